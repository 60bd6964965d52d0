/*
 * host_log.c -- the log functions the CLI hands to a plugin's Init, as disklib does.
 *
 * They take (fmt, va_list), which stable Rust cannot receive, so they format here and pass
 * the finished line to Rust.
 */
#include <stdarg.h>
#include <stdio.h>

void openvaai_host_log_line(int level, const char *line);

static void emit(int level, const char *fmt, va_list args)
{
   char line[2048];
   int n = vsnprintf(line, sizeof line, fmt, args);
   if (n >= 0) {
      openvaai_host_log_line(level, line);
   }
}

void openvaai_host_log(const char *fmt, va_list args) { emit(0, fmt, args); }
void openvaai_host_warn(const char *fmt, va_list args) { emit(1, fmt, args); }
void openvaai_host_panic(const char *fmt, va_list args) { emit(2, fmt, args); }
