//! fcgi_stdio.h: the FCGI_* layer and `_fcgi_sF` (written by the stdio helper).
