/*
 * ringfuse-memfs main program: its -o options, the operations table, the operations that
 * concern the whole filesystem (init, statfs, syncfs), and main().
 */
#include "memfs.h"

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	case 't':
	case 'T':
		v <<= 40;
		end++;
		break;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* The library consumes default_permissions itself; whether the kernel checks permissions
 * decides whether we must, so look at the command line for the last word on it. */
static bool want_own_perm_checks(int argc, char *argv[])
{
	bool own = false;

	for (int i = 1; i < argc; i++) {
		const char *list;

		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			list = argv[++i];
		else if (!strncmp(argv[i], "-o", 2))
			list = argv[i] + 2;
		else
			continue;
		for (const char *p = list; *p;) {
			size_t len = strcspn(p, ",");

			if (len == 22 && !strncmp(p, "no_default_permissions", len))
				own = true;
			else if (len == 19 && !strncmp(p, "default_permissions", len))
				own = false;
			p += len;
			if (*p == ',')
				p++;
		}
	}
	return own;
}

static bool asked_for_help(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}

static void print_help(void)
{
	printf("\n"
	       "memfs options:\n"
	       "    cache=none|auto|always entry/attr timeouts 0, 1 s (default) or a day; always\n"
	       "                           also keeps file and directory caches across opens\n"
	       "    size=N[kmgt]           capacity in bytes (default: half the RAM)\n"
	       "    nr_inodes=N[kmgt]      most inodes (default: RAM / 8 KiB, at least 1M)\n"
	       "    mode=OCTAL, uid=N, gid=N  owner and mode of the root directory\n"
	       "    writeback              let the kernel cache writes (writeback cache)\n"
	       "With no_default_permissions memfs checks permissions itself; entries are then\n"
	       "not cached (unless cache= is given) so that every path walk reaches it.\n");
}

static int read_opts(rf_session *se)
{
	const char *v;
	uint64_t n;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t ram = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 1ull << 32;

	fs.max_bytes = ram / 2;
	fs.max_inodes = max_u64(ram / 8192, 1u << 20);
	fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 1.0;
	fs.root_mode = 0755;
	fs.root_uid = getuid();
	fs.root_gid = getgid();

	v = rf_session_opt(se, "cache");
	if (v) {
		if (!strcmp(v, "none")) {
			fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 0;
		} else if (!strcmp(v, "always")) {
			fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 86400.0;
			fs.keep_cache = fs.cache_dir = true;
		} else if (strcmp(v, "auto")) {
			fprintf(stderr, "memfs: cache=%s: expected none, auto or always\n", v);
			return -EINVAL;
		}
	} else if (fs.perm_check) {
		/* The kernel walks cached entries without asking us, so our search permission
		 * checks would be skipped for names someone else looked up. */
		fs.entry_timeout = fs.neg_timeout = 0;
	}
	v = rf_session_opt(se, "size");
	if (v) {
		if (parse_size(v, &n) < 0 || n < CHUNK_SIZE) {
			fprintf(stderr, "memfs: bad size=%s\n", v);
			return -EINVAL;
		}
		fs.max_bytes = n;
	}
	v = rf_session_opt(se, "nr_inodes");
	if (v) {
		if (parse_size(v, &n) < 0 || n < 2) {
			fprintf(stderr, "memfs: bad nr_inodes=%s\n", v);
			return -EINVAL;
		}
		fs.max_inodes = n;
	}
	v = rf_session_opt(se, "mode");
	if (v) {
		char *end;
		unsigned long m = strtoul(v, &end, 8);

		if (!*v || *end || m > 07777) {
			fprintf(stderr, "memfs: bad mode=%s\n", v);
			return -EINVAL;
		}
		fs.root_mode = (mode_t)m;
	}
	v = rf_session_opt(se, "uid");
	if (v) {
		if (parse_size(v, &n) < 0 || n >= UINT32_MAX) {
			fprintf(stderr, "memfs: bad uid=%s\n", v);
			return -EINVAL;
		}
		fs.root_uid = (uid_t)n;
	}
	v = rf_session_opt(se, "gid");
	if (v) {
		if (parse_size(v, &n) < 0 || n >= UINT32_MAX) {
			fprintf(stderr, "memfs: bad gid=%s\n", v);
			return -EINVAL;
		}
		fs.root_gid = (gid_t)n;
	}
	fs.writeback = rf_session_opt(se, "writeback") != NULL;
	return 0;
}

static void mfs_init(void *userdata, struct rf_conn_info *conn)
{
	uint64_t want = RF_CAP_HANDLE_KILLPRIV_V2 | RF_CAP_ATOMIC_O_TRUNC | RF_CAP_CACHE_SYMLINKS |
			RF_CAP_PARALLEL_DIROPS;

	(void)userdata;
	if (fs.writeback)
		want |= RF_CAP_WRITEBACK_CACHE;
	conn->want |= want & conn->capable;
	conn->time_gran = 1;
	fs.killpriv_v2 = (conn->want & conn->capable & RF_CAP_HANDLE_KILLPRIV_V2) != 0;
}

static void mfs_destroy(void *userdata)
{
	(void)userdata;
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

int main(int argc, char *argv[])
{
	rf_session *se;
	int ret;

	if (fs_setup() < 0) {
		fprintf(stderr, "memfs: out of memory\n");
		return 1;
	}
	fs.perm_check = want_own_perm_checks(argc, argv);
	se = rf_session_new(argc, argv, &memfs_ops, sizeof(memfs_ops), &fs);
	if (!se) {
		int usage_error = errno != 0;

		if (!usage_error && asked_for_help(argc, argv))
			print_help();
		fs_teardown();
		return usage_error ? 1 : 0;
	}
	if (read_opts(se) < 0 || root_create() < 0) {
		rf_session_destroy(se);
		fs_teardown();
		return 1;
	}
	ret = rf_session_run(se);
	rf_session_destroy(se);
	fs_teardown();
	return ret < 0 ? 1 : 0;
}
