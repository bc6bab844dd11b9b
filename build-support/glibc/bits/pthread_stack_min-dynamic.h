/* Shadows glibc's header of this name (glibc >= 2.34), which makes PTHREAD_STACK_MIN a
   sysconf() call under _GNU_SOURCE. The Boost bundled with liblsl (lsl-sys 0.1.1) tests
   `#if PTHREAD_STACK_MIN > 0` in the preprocessor, which needs a constant: this gives
   it glibc's constant definition. Found first through CPLUS_INCLUDE_PATH (.cargo/config.toml). */
#ifndef PTHREAD_STACK_MIN
# include <bits/pthread_stack_min.h>
#endif
