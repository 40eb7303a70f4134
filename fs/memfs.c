/*
 * Transitional: memfs lives in fs/memfs/ now. This unity file only keeps programs that still
 * compile the old single file (the fuzz harness's memfs_embed.c) building; the harness should
 * include memfs/memfs.h and link memfs_sources instead, and then this file goes away.
 */
#include "memfs/attr.c"
#include "memfs/data.c"
#include "memfs/dir.c"
#include "memfs/entry.c"
#include "memfs/file.c"
#include "memfs/inode.c"
#include "memfs/main.c"
#include "memfs/perm.c"
#include "memfs/rename.c"
#include "memfs/xattr.c"
