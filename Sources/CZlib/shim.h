#ifndef COLLABHUB_CZLIB_SHIM_H
#define COLLABHUB_CZLIB_SHIM_H
#include <zlib.h>
// deflateInit2/inflateInit2 are macros that pass the library version and struct size.
static inline int chub_deflate_init2(z_stream *s, int level, int bits, int mem) {
    return deflateInit2(s, level, Z_DEFLATED, bits, mem, Z_DEFAULT_STRATEGY);
}
static inline int chub_inflate_init2(z_stream *s, int bits) { return inflateInit2(s, bits); }
#endif
