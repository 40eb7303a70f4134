/*
 * ringfuse-passthrough, kernel passthrough (-o passthrough). An open regular file is registered as
 * a backing file and the open reply names it: the kernel then reads, writes and maps it itself, and
 * the server only sees the other requests of that file (flush, fsync, setattr, release...), still
 * served through the descriptor in fh. The kernel insists that all open files of one inode use the
 * same backing file and that passthrough and cached opens of an inode never overlap, so the backing
 * id lives in the inode, shared by its passthrough opens and dropped with the last of them; an
 * inode with opens served the ordinary way (registration refused) keeps getting ordinary opens
 * until they are all released. The kernel opens its own backing file per open file, with the flags
 * of that open and the credentials of the registration (the server's), and still removes suid/sgid
 * on write as the writer. A refusal is reported once per reason; one that concerns the connection
 * (no root, the kernel did not enable passthrough) ends the attempts.
 */
#include "passthrough.h"

/* Say once per reason why the kernel would not take a backing file; stop asking if the reason
 * holds for the whole connection. */
static void passthrough_refused(int err)
{
	static atomic_bool said[256];
	bool global = err == -EPERM || err == -EOPNOTSUPP || err == -ENOTTY || err == -ENOSYS;

	if (global)
		atomic_store(&fs.passthrough, false);
	if (-err > 0 && -err < 256 && atomic_exchange(&said[-err], true))
		return;
	fprintf(stderr, "ringfuse-passthrough: kernel passthrough refused (%s); %s\n",
		strerror(-err),
		global ? "files are served through this daemon from now on"
		       : "the files concerned are served through this daemon");
}

/*
 * Decide how the kernel does the I/O of a new open file of in (fd is its descriptor, fi the
 * reply being prepared): through the inode's backing file, registering fd as that if it has
 * none and no ordinary opens are left, or the ordinary way.
 */
void passthrough_attach(rf_req *req, struct pt_inode *in, int fd, struct rf_file_info *fi)
{
	struct shard *s;
	int id;

	if (!atomic_load_explicit(&fs.passthrough, memory_order_relaxed) || !S_ISREG(in->type) ||
	    in == &fs.root)
		return;
	s = shard_of(key_hash(in->dev, in->ino));
	pthread_mutex_lock(&s->lock);
	if (!in->backing_id && !in->nplain) {
		/* The kernel keeps its own reference to the file behind fd, and the credentials
		 * of this call for the I/O it does on it. */
		id = creds_backing_begin();
		if (id == 0)
			id = rf_passthrough_open(rf_req_session(req), fd);
		creds_backing_end();
		if (id > 0)
			in->backing_id = id;
		else
			passthrough_refused(id);
	}
	if (in->backing_id) {
		in->npt++;
		fi->fh |= FH_PT;
		fi->passthrough = 1;
		fi->backing_id = in->backing_id;
		/* The kernel refuses these with passthrough: it does the I/O, O_DIRECT included
		 * (its backing file is opened with this open's flags). */
		fi->direct_io = 0;
		fi->parallel_direct_writes = 0;
		fi->keep_cache = 0;
	} else {
		in->nplain++;
		fi->fh |= FH_PLAIN;
	}
	pthread_mutex_unlock(&s->lock);
}

/* An open file of in is gone (released, or its open reply was not delivered). */
void passthrough_detach(rf_req *req, struct pt_inode *in, uint64_t fh)
{
	struct shard *s;
	int id = 0;

	if (!(fh & (FH_PT | FH_PLAIN)))
		return;
	s = shard_of(key_hash(in->dev, in->ino));
	pthread_mutex_lock(&s->lock);
	if (fh & FH_PLAIN) {
		in->nplain--;
	} else if (--in->npt == 0) {
		/* Every file that used it is released: the kernel's inode let go of it too. */
		id = in->backing_id;
		in->backing_id = 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (id) {
		creds_backing_begin();
		rf_passthrough_close(rf_req_session(req), id);
		creds_backing_end();
	}
}
