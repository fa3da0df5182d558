//! fcgios.h: the OS_* layer (written by the OS helper).
