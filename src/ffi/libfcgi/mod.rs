//! The libfcgi face: the 89 symbols of Debian's libfcgi.so.0 (2.4.2) with its struct layouts,
//! so programs built against libfcgi run unmodified on this runtime. See docs/libfcgi-compat.md.
//!
//! - [`types`]: the C structures (FCGX_Stream, FCGX_Request, FCGI_FILE);
//! - [`fcgx`]: init, accept, finish, parameters (fcgiapp.h, request side);
//! - [`stream`]: FCGX_Stream reading and writing (fcgiapp.h, stream side);
//! - [`stdio`]: the FCGI_* stdio layer (fcgi_stdio.h) and `_fcgi_sF`;
//! - [`os`]: the OS_* layer (fcgios.h) cgi-fcgi uses;
//! - [`trampolines`]: the variadic and va_list functions, implemented in C (csrc/printf.c).
//!
//! # Safety
//! Every exported function here follows the contract of the libfcgi function of the same name:
//! pointer arguments are NULL (where libfcgi allows it) or valid for the documented use.
#![allow(non_snake_case, non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

pub mod fcgx;
pub mod os;
pub mod stdio;
pub mod stream;
mod trampolines;
pub mod types;
