#ifndef COLLABHUB_CSQLITE_SHIM_H
#define COLLABHUB_CSQLITE_SHIM_H
#include <sqlite3.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/resource.h>
// SQLITE_TRANSIENT is a macro casting -1 to a function pointer; Swift cannot import it.
static inline sqlite3_destructor_type chub_sqlite_transient(void) { return SQLITE_TRANSIENT; }
// The calling thread's id (for per-thread priority); glibc's gettid() needs _GNU_SOURCE.
static inline int chub_gettid(void) { return (int)syscall(SYS_gettid); }
#endif
