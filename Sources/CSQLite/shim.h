#ifndef COLLABHUB_CSQLITE_SHIM_H
#define COLLABHUB_CSQLITE_SHIM_H
#include <sqlite3.h>
// SQLITE_TRANSIENT is a macro casting -1 to a function pointer; Swift cannot import it.
static inline sqlite3_destructor_type chub_sqlite_transient(void) { return SQLITE_TRANSIENT; }
// Gives free heap pages back to the system (after the writer released its page cache).
#include <malloc.h>
static inline int chub_malloc_trim(void) { return malloc_trim(0); }
#endif
