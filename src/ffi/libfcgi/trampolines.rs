//! The public names of libfcgi's variadic and va_list functions. Their bodies are C
//! (csrc/printf.c, compiled by build.rs); rustc exports only Rust symbols from a cdylib, so each
//! public name is a naked function that jumps to its C body with every register and the stack
//! untouched. The variadic arguments (and `%al`, the vector register count) pass through as if
//! the caller had called the C function itself.

unsafe extern "C" {
    fn fcgi_c_FCGX_FPrintF();
    fn fcgi_c_FCGX_VFPrintF();
    fn fcgi_c_FCGI_printf();
    fn fcgi_c_FCGI_fprintf();
    fn fcgi_c_FCGI_vprintf();
    fn fcgi_c_FCGI_vfprintf();
}

macro_rules! trampoline {
    ($name:ident => $target:ident) => {
        /// A jump to the C implementation (see the module documentation).
        #[unsafe(naked)]
        #[no_mangle]
        pub extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!("jmp {}", sym $target);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!("b {}", sym $target);
        }
    };
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the libfcgi variadic trampolines are written for x86_64 and aarch64");

// int FCGX_FPrintF(FCGX_Stream *stream, const char *format, ...);
trampoline!(FCGX_FPrintF => fcgi_c_FCGX_FPrintF);
// int FCGX_VFPrintF(FCGX_Stream *stream, const char *format, va_list arg);
trampoline!(FCGX_VFPrintF => fcgi_c_FCGX_VFPrintF);
// int FCGI_printf(const char *format, ...);
trampoline!(FCGI_printf => fcgi_c_FCGI_printf);
// int FCGI_fprintf(FCGI_FILE *fp, const char *format, ...);
trampoline!(FCGI_fprintf => fcgi_c_FCGI_fprintf);
// int FCGI_vprintf(const char *format, va_list ap);
trampoline!(FCGI_vprintf => fcgi_c_FCGI_vprintf);
// int FCGI_vfprintf(FCGI_FILE *fp, const char *format, va_list ap);
trampoline!(FCGI_vfprintf => fcgi_c_FCGI_vfprintf);
