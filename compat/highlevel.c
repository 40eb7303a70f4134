/*
 * libfuse's high-level API (fuse.h: fuse_main_real(), fuse_new(), fuse_loop(), fuse_fs_*...):
 * not provided, and a program that needs it is stopped as it loads, with a message that says
 * why, before its main() runs.
 *
 * Why not just leave the symbols out: the dynamic loader would then stop a program linked with
 * -z now with "symbol lookup error: ... undefined symbol: fuse_main_real, version FUSE_3.0",
 * which does not say what is wrong or what to do, and a lazily bound program would start,
 * mount perhaps, and die at its first call. So every high-level symbol is here, at its libfuse
 * version (the symbol check compares the whole table with the system's libfuse3.so.3), and a
 * constructor looks through the relocations of every object loaded with the library for
 * references to them. One found, the process exits with a clear message (status 127, as for a
 * loader failure). A stub called anyway (looked up with dlsym) fails loudly and returns its
 * error value.
 */
#include "compat.h"
#include <fuse.h>

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the load-time check ---- */

#if __ELF_NATIVE_CLASS == 64
#define REL_SYM(info) ELF64_R_SYM(info)
#else
#define REL_SYM(info) ELF32_R_SYM(info)
#endif

static const char *const highlevel_names[] = {
	"fuse_main_real",
	"fuse_new",
	"fuse_new_30",
	"fuse_new_31",
	"fuse_mount",
	"fuse_unmount",
	"fuse_destroy",
	"fuse_loop",
	"fuse_loop_mt",
	"fuse_loop_mt_31",
	"fuse_loop_mt_32",
	"fuse_loop_mt_312",
	"fuse_exit",
	"fuse_get_context",
	"fuse_getgroups",
	"fuse_interrupted",
	"fuse_invalidate_path",
	"fuse_lib_help",
	"fuse_start_cleanup_thread",
	"fuse_stop_cleanup_thread",
	"fuse_clean_cache",
	"fuse_notify_poll",
	"fuse_get_session",
	"fuse_open_channel",
};

static bool is_highlevel(const char *name)
{
	if (strncmp(name, "fuse_fs_", 8) == 0)
		return true;
	for (size_t i = 0; i < sizeof(highlevel_names) / sizeof(highlevel_names[0]); i++)
		if (strcmp(name, highlevel_names[i]) == 0)
			return true;
	return false;
}

struct scan {
	uintptr_t self; /* an address inside this library */
	const char *object;
	const char *symbol;
};

/* Dynamic entries hold addresses once the loader relocated them, offsets before. */
static uintptr_t dyn_addr(uintptr_t bias, ElfW(Addr) v)
{
	return v < bias ? bias + v : v;
}

static bool contains(const struct dl_phdr_info *info, uintptr_t addr)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && addr >= start && addr < start + ph->p_memsz)
			return true;
	}
	return false;
}

struct dyn_tables {
	const ElfW(Sym) * symtab;
	const char *strtab;
	size_t strsz;
	uintptr_t rela, relasz, rel, relsz, jmprel, pltrelsz;
	ElfW(Sxword) pltrel;
};

static const char *undefined_highlevel(const struct dyn_tables *t, size_t symidx)
{
	const ElfW(Sym) *sym = &t->symtab[symidx];

	if (symidx == 0 || sym->st_shndx != SHN_UNDEF || sym->st_name >= t->strsz)
		return NULL;
	return is_highlevel(t->strtab + sym->st_name) ? t->strtab + sym->st_name : NULL;
}

static const char *scan_relocations(const struct dyn_tables *t, uintptr_t table, size_t size,
				    bool rela)
{
	size_t entsize = rela ? sizeof(ElfW(Rela)) : sizeof(ElfW(Rel));

	for (size_t off = 0; table && off + entsize <= size; off += entsize) {
		ElfW(Xword) info = rela ? ((const ElfW(Rela) *)(table + off))->r_info
					: ((const ElfW(Rel) *)(table + off))->r_info;
		const char *found = undefined_highlevel(t, REL_SYM(info));

		if (found)
			return found;
	}
	return NULL;
}

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct scan *s = arg;
	struct dyn_tables t = {0};
	const ElfW(Dyn) *dyn = NULL;
	uintptr_t bias = info->dlpi_addr;
	const char *found;

	(void)size;
	if (contains(info, s->self))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(bias + info->dlpi_phdr[i].p_vaddr);
	if (!dyn)
		return 0;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		switch (dyn->d_tag) {
		case DT_SYMTAB:
			t.symtab = (const ElfW(Sym) *)dyn_addr(bias, dyn->d_un.d_ptr);
			break;
		case DT_STRTAB:
			t.strtab = (const char *)dyn_addr(bias, dyn->d_un.d_ptr);
			break;
		case DT_STRSZ:
			t.strsz = dyn->d_un.d_val;
			break;
		case DT_RELA:
			t.rela = dyn_addr(bias, dyn->d_un.d_ptr);
			break;
		case DT_RELASZ:
			t.relasz = dyn->d_un.d_val;
			break;
		case DT_REL:
			t.rel = dyn_addr(bias, dyn->d_un.d_ptr);
			break;
		case DT_RELSZ:
			t.relsz = dyn->d_un.d_val;
			break;
		case DT_JMPREL:
			t.jmprel = dyn_addr(bias, dyn->d_un.d_ptr);
			break;
		case DT_PLTRELSZ:
			t.pltrelsz = dyn->d_un.d_val;
			break;
		case DT_PLTREL:
			t.pltrel = dyn->d_un.d_val;
			break;
		}
	}
	if (!t.symtab || !t.strtab)
		return 0;
	found = scan_relocations(&t, t.rela, t.relasz, true);
	if (!found)
		found = scan_relocations(&t, t.rel, t.relsz, false);
	if (!found)
		found = scan_relocations(&t, t.jmprel, t.pltrelsz, t.pltrel != DT_REL);
	if (!found)
		return 0;
	s->object = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : program_invocation_name;
	s->symbol = found;
	return 1;
}

__attribute__((constructor)) static void refuse_highlevel_users(void)
{
	struct scan s = {.self = (uintptr_t)&refuse_highlevel_users};

	if (!dl_iterate_phdr(scan_object, &s))
		return;
	fprintf(stderr,
		"ringfuse: %s uses libfuse's high-level API (%s), which ringfuse's "
		"libfuse3.so.3 does not provide: only the low-level API (fuse_lowlevel.h) runs "
		"over ringfuse. Run it with the system's libfuse3 (without ringfuse-run).\n",
		s.object, s.symbol);
	_exit(127);
}

/* ---- the stubs ---- */

struct fuse *fuse_new_30(struct fuse_args *args, const struct fuse_operations *op, size_t op_size,
			 void *private_data);
struct fuse *fuse_new_31(struct fuse_args *args, const struct fuse_operations *op, size_t op_size,
			 void *private_data);
int fuse_loop_mt_31(struct fuse *f, int clone_fd);
int fuse_loop_mt_32(struct fuse *f, struct fuse_loop_config_v1 *config);
int fuse_loop_mt_312(struct fuse *f, struct fuse_loop_config *config);

__asm__(".symver fuse_new_30, fuse_new@FUSE_3.0");
__asm__(".symver fuse_new_31, fuse_new@@FUSE_3.1");
__asm__(".symver fuse_loop_mt_31, fuse_loop_mt@FUSE_3.0");
__asm__(".symver fuse_loop_mt_32, fuse_loop_mt@FUSE_3.2");
__asm__(".symver fuse_loop_mt_312, fuse_loop_mt@@FUSE_3.12");

#define UNUSED __attribute__((unused))

static void refused(const char *fn)
{
	compat_unsupported(fn, "libfuse's high-level API is not provided by ringfuse");
	errno = ENOSYS;
}

int fuse_main_real(UNUSED int argc, UNUSED char *argv[], UNUSED const struct fuse_operations *op,
		   UNUSED size_t op_size, UNUSED void *private_data)
{
	refused("fuse_main_real()");
	return 1;
}

struct fuse *fuse_new_30(UNUSED struct fuse_args *args, UNUSED const struct fuse_operations *op,
			 UNUSED size_t op_size, UNUSED void *private_data)
{
	refused("fuse_new()");
	return NULL;
}

struct fuse *fuse_new_31(UNUSED struct fuse_args *args, UNUSED const struct fuse_operations *op,
			 UNUSED size_t op_size, UNUSED void *private_data)
{
	refused("fuse_new()");
	return NULL;
}

int fuse_mount(UNUSED struct fuse *f, UNUSED const char *mountpoint)
{
	refused("fuse_mount()");
	return -1;
}

void fuse_unmount(UNUSED struct fuse *f)
{
	refused("fuse_unmount()");
}

void fuse_destroy(UNUSED struct fuse *f)
{
	refused("fuse_destroy()");
}

int fuse_loop(UNUSED struct fuse *f)
{
	refused("fuse_loop()");
	return -ENOSYS;
}

int fuse_loop_mt_31(UNUSED struct fuse *f, UNUSED int clone_fd)
{
	refused("fuse_loop_mt()");
	return -ENOSYS;
}

int fuse_loop_mt_32(UNUSED struct fuse *f, UNUSED struct fuse_loop_config_v1 *config)
{
	refused("fuse_loop_mt()");
	return -ENOSYS;
}

int fuse_loop_mt_312(UNUSED struct fuse *f, UNUSED struct fuse_loop_config *config)
{
	refused("fuse_loop_mt()");
	return -ENOSYS;
}

void fuse_exit(UNUSED struct fuse *f)
{
	refused("fuse_exit()");
}

/* Callers use the result at once: a context with nothing in it beats a NULL. */
struct fuse_context *fuse_get_context(void)
{
	static struct fuse_context empty;

	refused("fuse_get_context()");
	return &empty;
}

int fuse_getgroups(UNUSED int size, UNUSED gid_t list[])
{
	refused("fuse_getgroups()");
	return -ENOSYS;
}

int fuse_interrupted(void)
{
	refused("fuse_interrupted()");
	return 0;
}

int fuse_invalidate_path(UNUSED struct fuse *f, UNUSED const char *path)
{
	refused("fuse_invalidate_path()");
	return -ENOSYS;
}

void fuse_lib_help(UNUSED struct fuse_args *args)
{
	refused("fuse_lib_help()");
}

int fuse_start_cleanup_thread(UNUSED struct fuse *fuse)
{
	refused("fuse_start_cleanup_thread()");
	return -ENOSYS;
}

void fuse_stop_cleanup_thread(UNUSED struct fuse *fuse)
{
	refused("fuse_stop_cleanup_thread()");
}

int fuse_clean_cache(UNUSED struct fuse *fuse)
{
	refused("fuse_clean_cache()");
	return -ENOSYS;
}

int fuse_notify_poll(UNUSED struct fuse_pollhandle *ph)
{
	refused("fuse_notify_poll()");
	return -ENOSYS;
}

struct fuse_session *fuse_get_session(UNUSED struct fuse *f)
{
	refused("fuse_get_session()");
	return NULL;
}

int fuse_open_channel(UNUSED const char *mountpoint, UNUSED const char *options)
{
	refused("fuse_open_channel()");
	return -1;
}

struct fuse_fs *fuse_fs_new(UNUSED const struct fuse_operations *op, UNUSED size_t op_size,
			    UNUSED void *private_data)
{
	refused("fuse_fs_new()");
	return NULL;
}

void fuse_fs_init(UNUSED struct fuse_fs *fs, UNUSED struct fuse_conn_info *conn,
		  UNUSED struct fuse_config *cfg)
{
	refused("fuse_fs_init()");
}

void fuse_fs_destroy(UNUSED struct fuse_fs *fs)
{
	refused("fuse_fs_destroy()");
}

/* The fuse_fs_* operations all return -errno. */
#define FS_STUB(name, params)        \
	int name params              \
	{                            \
		refused(#name "()"); \
		return -ENOSYS;      \
	}

FS_STUB(fuse_fs_getattr, (UNUSED struct fuse_fs * fs, UNUSED const char *path,
			  UNUSED struct stat *buf, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_rename, (UNUSED struct fuse_fs * fs, UNUSED const char *oldpath,
			 UNUSED const char *newpath, UNUSED unsigned int flags))
FS_STUB(fuse_fs_unlink, (UNUSED struct fuse_fs * fs, UNUSED const char *path))
FS_STUB(fuse_fs_rmdir, (UNUSED struct fuse_fs * fs, UNUSED const char *path))
FS_STUB(fuse_fs_symlink,
	(UNUSED struct fuse_fs * fs, UNUSED const char *linkname, UNUSED const char *path))
FS_STUB(fuse_fs_link,
	(UNUSED struct fuse_fs * fs, UNUSED const char *oldpath, UNUSED const char *newpath))
FS_STUB(fuse_fs_release,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_open,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_read, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED char *buf,
		       UNUSED size_t size, UNUSED off_t off, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_read_buf,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct fuse_bufvec **bufp,
	 UNUSED size_t size, UNUSED off_t off, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_write, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED const char *buf,
			UNUSED size_t size, UNUSED off_t off, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_write_buf,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct fuse_bufvec *buf,
	 UNUSED off_t off, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_fsync, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED int datasync,
			UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_flush,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_statfs,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct statvfs *buf))
FS_STUB(fuse_fs_opendir,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_readdir, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED void *buf,
			  UNUSED fuse_fill_dir_t filler, UNUSED off_t off,
			  UNUSED struct fuse_file_info *fi, UNUSED enum fuse_readdir_flags flags))
FS_STUB(fuse_fs_fsyncdir, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED int datasync,
			   UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_releasedir,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_create, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED mode_t mode,
			 UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_lock, (UNUSED struct fuse_fs * fs, UNUSED const char *path,
		       UNUSED struct fuse_file_info *fi, UNUSED int cmd, UNUSED struct flock *lock))
FS_STUB(fuse_fs_flock, (UNUSED struct fuse_fs * fs, UNUSED const char *path,
			UNUSED struct fuse_file_info *fi, UNUSED int op))
FS_STUB(fuse_fs_chmod, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED mode_t mode,
			UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_chown, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED uid_t uid,
			UNUSED gid_t gid, UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_truncate, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED off_t size,
			   UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_utimens, (UNUSED struct fuse_fs * fs, UNUSED const char *path,
			  UNUSED const struct timespec tv[2], UNUSED struct fuse_file_info *fi))
FS_STUB(fuse_fs_access, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED int mask))
FS_STUB(fuse_fs_readlink,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED char *buf, UNUSED size_t len))
FS_STUB(fuse_fs_mknod, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED mode_t mode,
			UNUSED dev_t rdev))
FS_STUB(fuse_fs_mkdir, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED mode_t mode))
FS_STUB(fuse_fs_setxattr,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED const char *name,
	 UNUSED const char *value, UNUSED size_t size, UNUSED int flags))
FS_STUB(fuse_fs_getxattr, (UNUSED struct fuse_fs * fs, UNUSED const char *path,
			   UNUSED const char *name, UNUSED char *value, UNUSED size_t size))
FS_STUB(fuse_fs_listxattr, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED char *list,
			    UNUSED size_t size))
FS_STUB(fuse_fs_removexattr,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED const char *name))
FS_STUB(fuse_fs_bmap, (UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED size_t blocksize,
		       UNUSED uint64_t *idx))
FS_STUB(fuse_fs_ioctl, (UNUSED struct fuse_fs * fs, UNUSED const char *path,
			UNUSED unsigned int cmd, UNUSED void *arg, UNUSED struct fuse_file_info *fi,
			UNUSED unsigned int flags, UNUSED void *data))
FS_STUB(fuse_fs_poll,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED struct fuse_file_info *fi,
	 UNUSED struct fuse_pollhandle *ph, UNUSED unsigned *reventsp))
FS_STUB(fuse_fs_fallocate,
	(UNUSED struct fuse_fs * fs, UNUSED const char *path, UNUSED int mode, UNUSED off_t offset,
	 UNUSED off_t length, UNUSED struct fuse_file_info *fi))

ssize_t fuse_fs_copy_file_range(UNUSED struct fuse_fs *fs, UNUSED const char *path_in,
				UNUSED struct fuse_file_info *fi_in, UNUSED off_t off_in,
				UNUSED const char *path_out, UNUSED struct fuse_file_info *fi_out,
				UNUSED off_t off_out, UNUSED size_t len, UNUSED int flags)
{
	refused("fuse_fs_copy_file_range()");
	return -ENOSYS;
}

off_t fuse_fs_lseek(UNUSED struct fuse_fs *fs, UNUSED const char *path, UNUSED off_t off,
		    UNUSED int whence, UNUSED struct fuse_file_info *fi)
{
	refused("fuse_fs_lseek()");
	return -ENOSYS;
}
