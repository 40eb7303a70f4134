/*
 * The dispatch fuzz harness, shared by the libFuzzer target (fuzz_dispatch.c) and the plain
 * replay program (replay.c) that runs saved inputs in every build.
 *
 * Input format (see README.md): byte 0 holds mode bits, then records, each a 32-bit
 * little-endian length and that many bytes of one request in the /dev/fuse layout
 * (fuse_in_header, the opcode's fixed argument struct, the remaining arguments). A length
 * larger than what is left takes what is left; its top bit is FUZZ_RECORD_DIRECT.
 */
#ifndef RINGFUSE_FUZZ_HARNESS_H
#define RINGFUSE_FUZZ_HARNESS_H

#include "ringfuse.h"

#include <stddef.h>
#include <stdint.h>

/* Mode bits of byte 0 (README.md has the long story). */
#define FUZZ_MODE_SPLIT	       0x01 /* io-uring layout: header, op_in, payload apart */
#define FUZZ_MODE_RAW	       0x02 /* split: op_in as present; classic: len as given */
#define FUZZ_MODE_OWN_INIT     0x04 /* the first record is the INIT; the harness sends none */
#define FUZZ_MODE_OUTCAP_SHIFT 3    /* 2 bits: reply area full, 64 KiB, 4 KiB, 100 bytes */
#define FUZZ_MODE_OLD_KERNEL   0x20 /* harness INIT from 7.26: no INIT_EXT, no SETXATTR_EXT */
#define FUZZ_MODE_PERM_CHECK   0x40 /* memfs checks permissions (no_default_permissions) */
#define FUZZ_MODE_DEBUG	       0x80 /* -d: every request traced (formatted, then discarded) */

/* In a record's length: feed it straight to rf_dispatch_msg() / rf_dispatch_split() with
 * each part in a heap block of exactly its size, rather than through the memory transport. */
#define FUZZ_RECORD_DIRECT 0x80000000u

#define FUZZ_MAX_RECORDS 64

/* memfs in the harness: small, so no input can grow the fuzzer. */
#define FUZZ_MEMFS_BYTES      (16u << 20)
#define FUZZ_MEMFS_INODES     4096u
#define FUZZ_MEMFS_PERM_CHECK 0x1 /* and, as memfs does then, no entry caching */

const struct rf_ops *fuzz_memfs_ops(size_t *size);
/* A fresh, empty filesystem (only the root). 0 or -errno. */
int fuzz_memfs_start(unsigned int flags);
/* Free everything the filesystem holds. */
void fuzz_memfs_stop(void);
/* Inodes and data bytes memfs accounts for (both 0 once stopped). */
uint64_t fuzz_memfs_inodes(void);
uint64_t fuzz_memfs_bytes(void);

/*
 * Strict mode (replay --strict, for the seed corpus): every request must be well formed, i.e.
 * not refused by the decoder, and answered with success (ENOSYS for the opcodes nobody
 * implements). Each violation prints a line and is counted here.
 */
extern int fuzz_strict;
extern unsigned long fuzz_strict_failures;
/* Print each request and its answer to stderr. */
extern int fuzz_verbose;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* RINGFUSE_FUZZ_HARNESS_H */
