/*
 * log_shim.c -- calls disklib's log functions, which take a va_list.
 *
 * Rust cannot build a va_list on stable, so the plugin hands each finished message to this
 * shim, which forwards it as ("%s", message): the message is never a format string.
 */
#include <stdarg.h>
#include <stddef.h>

typedef void(openvaai_log_func)(const char *fmt, va_list args);

static void forward(openvaai_log_func *cb, const char *fmt, ...)
{
   va_list args;
   va_start(args, fmt);
   cb(fmt, args);
   va_end(args);
}

void openvaai_log_shim(openvaai_log_func *cb, const char *msg)
{
   if (cb != NULL && msg != NULL) {
      forward(cb, "%s", msg);
   }
}
