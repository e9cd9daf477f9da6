/* runtime/errf.h - the runtime readers' error messages: printf into the caller's err
 * buffer of CAP bytes (NULL: no message wanted). Each file wraps it as set_err with its
 * own buffer size. */
#ifndef HZ_ERRF_H
#define HZ_ERRF_H
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __GNUC__
__attribute__((format(printf, 3, 4)))
#endif
static inline void hz_errf(char *err, size_t cap, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

#endif
