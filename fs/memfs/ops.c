/*
 * memfs operations table, and the operations that concern the whole filesystem: init,
 * destroy, statfs, syncfs.
 */
#include "memfs.h"

static void mfs_init(void *userdata, struct rf_conn_info *conn)
{
	uint64_t want = RF_CAP_HANDLE_KILLPRIV_V2 | RF_CAP_ATOMIC_O_TRUNC | RF_CAP_CACHE_SYMLINKS |
			RF_CAP_PARALLEL_DIROPS;

	(void)userdata;
	if (fs.writeback)
		want |= RF_CAP_WRITEBACK_CACHE;
	conn->want |= want & conn->capable;
	/* File data only changes through this mount, or through the control socket, which
	 * notifies the kernel itself. Checking mtime before each read would cost a GETATTR per
	 * read whenever attributes are not cached (cache=none). */
	conn->want &= ~RF_CAP_AUTO_INVAL_DATA;
	conn->time_gran = 1;
	fs.killpriv_v2 = (conn->want & conn->capable & RF_CAP_HANDLE_KILLPRIV_V2) != 0;
	/* Threads start here, not in main(): a daemon that detaches forks after main() handed
	 * over, and threads do not survive a fork. */
	if (defer_start() < 0)
		fprintf(stderr, "memfs: deferred replies unavailable, answering in place\n");
	if (ctl_start() < 0)
		fprintf(stderr, "memfs: the control socket thread did not start\n");
}

static void mfs_destroy(void *userdata)
{
	(void)userdata;
	/* Last chance while the session's /dev/fuse fd is open: stop sending notifications
	 * through it, and answer what the pool still holds. main() repeats this when the
	 * connection never got that far. */
	ctl_close();
	defer_stop();
}

static void mfs_statfs(rf_req *req, rf_ino ino)
{
	struct statvfs st;
	uint64_t used = atomic_load(&fs.used_bytes), files = atomic_load(&fs.ninodes);

	(void)ino;
	memset(&st, 0, sizeof(st));
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_blocks = fs.max_bytes / 4096;
	st.f_bfree = st.f_bavail = (fs.max_bytes - min_u64(used, fs.max_bytes)) / 4096;
	st.f_files = fs.max_inodes;
	st.f_ffree = st.f_favail = fs.max_inodes - min_u64(files, fs.max_inodes);
	st.f_namemax = NAME_LEN_MAX;
	rf_reply_statfs(req, &st);
}

static void mfs_syncfs(rf_req *req, rf_ino ino)
{
	(void)ino;
	rf_reply_err(req, 0);
}

const struct rf_ops memfs_ops = {
	.init = mfs_init,
	.destroy = mfs_destroy,
	.lookup = mfs_lookup,
	.forget = mfs_forget,
	.getattr = mfs_getattr,
	.setattr = mfs_setattr,
	.readlink = mfs_readlink,
	.mknod = mfs_mknod,
	.mkdir = mfs_mkdir,
	.unlink = mfs_unlink,
	.rmdir = mfs_rmdir,
	.symlink = mfs_symlink,
	.rename = mfs_rename,
	.link = mfs_link,
	.open = mfs_open,
	.read = mfs_read,
	.write = mfs_write,
	.flush = mfs_flush,
	.release = mfs_release,
	.fsync = mfs_fsync,
	.opendir = mfs_opendir,
	.readdir = mfs_readdir,
	.releasedir = mfs_releasedir,
	.fsyncdir = mfs_fsync,
	.statfs = mfs_statfs,
	.setxattr = mfs_setxattr,
	.getxattr = mfs_getxattr,
	.listxattr = mfs_listxattr,
	.removexattr = mfs_removexattr,
	.access = mfs_access,
	.create = mfs_create,
	.fallocate = mfs_fallocate,
	.readdirplus = mfs_readdirplus,
	.copy_file_range = mfs_copy_file_range,
	.lseek = mfs_lseek,
	.tmpfile = mfs_tmpfile,
	.syncfs = mfs_syncfs,
};
