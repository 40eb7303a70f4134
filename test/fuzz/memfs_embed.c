/*
 * ringfuse-memfs built into the fuzz harness instead of into its own program.
 *
 * Everything of memfs but its main() is in memfs_sources (fs/meson.build), which the harness
 * links. This file gives the harness the operations table and a fresh, empty filesystem for
 * every input (so an input's result never depends on the inputs before it) with a small
 * capacity (so no input can make the fuzzer's memory grow). memfs answers in place here: its
 * deferred-reply mode (-o defer=N) and control socket stay off.
 */
#include "../../fs/memfs/memfs.h"

#include "harness.h"

const struct rf_ops *fuzz_memfs_ops(size_t *size)
{
	*size = sizeof(memfs_ops);
	return &memfs_ops;
}

int fuzz_memfs_start(unsigned int flags)
{
	int ret;

	memset(&fs, 0, sizeof(fs));
	ret = fs_setup();
	if (ret < 0) {
		fs_teardown();
		return ret;
	}
	/* What read_opts() would set, without a session to read options from. */
	fs.max_bytes = FUZZ_MEMFS_BYTES;
	fs.max_inodes = FUZZ_MEMFS_INODES;
	fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 1.0;
	/* As memfs's read_opts(): with its own permission checks it caches no entries, and
	 * negative lookups are then answered ENOENT. */
	if (flags & FUZZ_MEMFS_PERM_CHECK)
		fs.entry_timeout = fs.neg_timeout = 0;
	fs.root_mode = 0755;
	fs.root_uid = 0;
	fs.root_gid = 0;
	fs.perm_check = (flags & FUZZ_MEMFS_PERM_CHECK) != 0;
	ret = root_create();
	if (ret < 0)
		fs_teardown();
	return ret;
}

void fuzz_memfs_stop(void)
{
	fs_teardown();
}

uint64_t fuzz_memfs_inodes(void)
{
	return atomic_load(&fs.ninodes);
}

uint64_t fuzz_memfs_bytes(void)
{
	return atomic_load(&fs.used_bytes);
}
