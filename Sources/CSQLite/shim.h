#ifndef COLLABHUB_CSQLITE_SHIM_H
#define COLLABHUB_CSQLITE_SHIM_H
#include <sqlite3.h>
// SQLITE_TRANSIENT is a macro casting -1 to a function pointer; Swift cannot import it.
static inline sqlite3_destructor_type chub_sqlite_transient(void) { return SQLITE_TRANSIENT; }
// Gives free heap pages back to the system (after the writer released its page cache).
#include <malloc.h>
static inline int chub_malloc_trim(void) { return malloc_trim(0); }
// Turns SQLite's allocation statistics off: with them on, every sqlite3_malloc and sqlite3_free takes a
// global mutex and updates counters that nothing here reads (no soft heap limit either). sqlite3_config is
// variadic, which Swift cannot call; it only takes effect before the library initialises (else SQLITE_MISUSE).
static inline int chub_sqlite_memstatus_off(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }
#endif
