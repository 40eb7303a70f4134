/*
 * fuse_opt_*: libfuse's argument parser, with its exact behaviour, since filesystems build
 * their command lines on it.
 *
 * What it does, in short: fuse_opt_parse() walks argv[1..]; "-o a,b" groups are split at
 * unescaped commas (a backslash escapes the next character, or gives one from three octal
 * digits); "--" ends the options. Each option is matched against every template of the table
 * ("name", "name=", "name=%fmt", "-x %fmt" taking the next argument): a template with an offset
 * stores into data (an int set to value, or the parameter scanned with the format; "%s" is
 * strdup'd, freeing what was there), a FUSE_OPT_KEY template passes its key to the processing
 * function. Options no template matches go to it as FUSE_OPT_KEY_OPT, positional arguments as
 * FUSE_OPT_KEY_NONOPT. Whatever it keeps (it returns 1, or the key is FUSE_OPT_KEY_KEEP, or
 * there is no function) is handed on in the output argv: -o options gathered, re-escaped, into
 * one "-o" group right after argv[0], the rest in order. The output replaces args only if
 * parsing succeeded.
 */
#include "compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FUSE_OPT_KEY() stores -1U as the offset. */
#define OFFSET_IS_KEY ((unsigned long)-1U)

struct parser {
	void *data;
	const struct fuse_opt *table;
	fuse_opt_proc_t proc;
	int argc;
	char **argv;
	int at;		      /* index of the argument being parsed */
	struct fuse_args out; /* what is handed on */
	char *kept;	      /* -o options handed on, escaped, comma separated */
	int after_dashes;     /* out.argc right after "--" was handed on; 0 before */
};

static int no_memory(void)
{
	fuse_log(FUSE_LOG_ERR, "fuse: out of memory\n");
	return -1;
}

void fuse_opt_free_args(struct fuse_args *args)
{
	if (!args)
		return;
	if (args->argv && args->allocated) {
		for (int i = 0; i < args->argc; i++)
			free(args->argv[i]);
		free(args->argv);
	}
	args->argc = 0;
	args->argv = NULL;
	args->allocated = 0;
}

/* An argv the caller gave us (FUSE_ARGS_INIT) is not ours to realloc: copy it first. */
static int own_argv(struct fuse_args *args)
{
	char **copy;

	if (!args->argv || args->allocated)
		return 0;
	copy = calloc((size_t)args->argc + 1, sizeof(*copy));
	if (!copy)
		return no_memory();
	for (int i = 0; i < args->argc; i++) {
		copy[i] = strdup(args->argv[i]);
		if (!copy[i]) {
			while (i-- > 0)
				free(copy[i]);
			free(copy);
			return no_memory();
		}
	}
	args->argv = copy;
	args->allocated = 1;
	return 0;
}

int fuse_opt_add_arg(struct fuse_args *args, const char *arg)
{
	char *dup;
	char **grown;

	if (own_argv(args) < 0)
		return -1;
	dup = strdup(arg);
	if (!dup)
		return no_memory();
	grown = realloc(args->argv, ((size_t)args->argc + 2) * sizeof(*grown));
	if (!grown) {
		free(dup);
		return no_memory();
	}
	grown[args->argc++] = dup;
	grown[args->argc] = NULL;
	args->argv = grown;
	args->allocated = 1;
	return 0;
}

int fuse_opt_insert_arg(struct fuse_args *args, int pos, const char *arg)
{
	char *added;

	if (pos < 0 || pos > args->argc) {
		fuse_log(FUSE_LOG_ERR, "fuse: fuse_opt_insert_arg: position %d out of range\n",
			 pos);
		return -1;
	}
	if (fuse_opt_add_arg(args, arg) < 0)
		return -1;
	added = args->argv[args->argc - 1];
	memmove(&args->argv[pos + 1], &args->argv[pos],
		(size_t)(args->argc - 1 - pos) * sizeof(args->argv[0]));
	args->argv[pos] = added;
	return 0;
}

/* Append opt to the comma-separated list *opts, escaping ',' and '\' if asked. */
static int append_opt(char **opts, const char *opt, bool escape)
{
	size_t used = *opts ? strlen(*opts) : 0;
	char *grown = realloc(*opts, used + 1 + 2 * strlen(opt) + 1);
	char *p;

	if (!grown)
		return no_memory();
	p = grown + used;
	if (used)
		*p++ = ',';
	for (; *opt; opt++) {
		if (escape && (*opt == ',' || *opt == '\\'))
			*p++ = '\\';
		*p++ = *opt;
	}
	*p = '\0';
	*opts = grown;
	return 0;
}

int fuse_opt_add_opt(char **opts, const char *opt)
{
	return append_opt(opts, opt, false);
}

int fuse_opt_add_opt_escaped(char **opts, const char *opt)
{
	return append_opt(opts, opt, true);
}

/*
 * Does template t match arg? A template whose first '=' (or, lacking one, first ' ') ends it
 * or is followed by a format matches every arg starting with what precedes it ('=' included);
 * *sep is then the separator's index. Any template also matches itself exactly (*sep = 0).
 */
static bool template_matches(const char *t, const char *arg, size_t *sep)
{
	const char *s = strchr(t, '=');

	if (!s)
		s = strchr(t, ' ');
	if (s && (s[1] == '\0' || s[1] == '%')) {
		size_t prefix = (size_t)(s - t) + (*s == '=' ? 1 : 0);

		if (strncmp(arg, t, prefix) == 0) {
			*sep = (size_t)(s - t);
			return true;
		}
	}
	if (strcmp(t, arg) == 0) {
		*sep = 0;
		return true;
	}
	return false;
}

/* The first template from t on that matches arg, or NULL. */
static const struct fuse_opt *next_match(const struct fuse_opt *t, const char *arg, size_t *sep)
{
	for (; t && t->templ; t++)
		if (template_matches(t->templ, arg, sep))
			return t;
	return NULL;
}

int fuse_opt_match(const struct fuse_opt opts[], const char *opt)
{
	size_t sep;

	return next_match(opts, opt, &sep) != NULL;
}

/* Hand arg on: into the -o group if it came from one, else as an argument of its own. */
static int keep(struct parser *p, const char *arg, bool in_group)
{
	if (in_group)
		return append_opt(&p->kept, arg, true);
	return fuse_opt_add_arg(&p->out, arg);
}

static int give_to_proc(struct parser *p, const char *arg, int key, bool in_group)
{
	if (key == FUSE_OPT_KEY_DISCARD)
		return 0;
	if (key != FUSE_OPT_KEY_KEEP && p->proc) {
		int res = p->proc(p->data, arg, key, &p->out);

		/* Only 0 (drop) and -1 (error) stop it; anything else keeps the option. */
		if (res == 0 || res == -1)
			return res;
	}
	return keep(p, arg, in_group);
}

static int store_param(void *var, const char *format, const char *param, const char *arg)
{
	if (format[1] == 's') {
		char **slot = var;
		char *copy = strdup(param);

		if (!copy)
			return no_memory();
		free(*slot);
		*slot = copy;
		return 0;
	}
	if (sscanf(param, format, var) != 1) {
		fuse_log(FUSE_LOG_ERR, "fuse: bad value in option `%s'\n", arg);
		return -1;
	}
	return 0;
}

static int apply(struct parser *p, const struct fuse_opt *t, size_t sep, const char *arg,
		 bool in_group)
{
	void *var;

	if (t->offset == OFFSET_IS_KEY)
		return give_to_proc(p, arg, t->value, in_group) == -1 ? -1 : 0;
	var = (char *)p->data + t->offset;
	if (sep && t->templ[sep + 1]) {
		const char *param = arg + sep + (t->templ[sep] == '=' ? 1 : 0);

		return store_param(var, t->templ + sep + 1, param, arg);
	}
	*(int *)var = t->value;
	return 0;
}

/* "-x %s" given as "-x" "value": the value is the next argument, joined to the option. */
static int apply_with_next(struct parser *p, const struct fuse_opt *t, size_t sep, const char *arg,
			   bool in_group)
{
	const char *value;
	char *joined;
	int res;

	if (p->at + 1 >= p->argc) {
		fuse_log(FUSE_LOG_ERR, "fuse: option `%s' needs an argument\n", arg);
		return -1;
	}
	value = p->argv[++p->at];
	joined = malloc(sep + strlen(value) + 1);
	if (!joined)
		return no_memory();
	memcpy(joined, arg, sep);
	strcpy(joined + sep, value);
	res = apply(p, t, sep, joined, in_group);
	free(joined);
	return res;
}

/* One option, from argv or from a -o group: every matching template applies. */
static int one_option(struct parser *p, const char *arg, bool in_group)
{
	size_t sep;
	const struct fuse_opt *t = next_match(p->table, arg, &sep);

	if (!t)
		return give_to_proc(p, arg, FUSE_OPT_KEY_OPT, in_group);
	for (; t; t = next_match(t + 1, arg, &sep)) {
		int res;

		if (sep && t->templ[sep] == ' ' && arg[sep] == '\0')
			res = apply_with_next(p, t, sep, arg, in_group);
		else
			res = apply(p, t, sep, arg, in_group);
		if (res == -1)
			return -1;
	}
	return 0;
}

/* Split a -o group at unescaped commas, undoing the escapes, and parse each option. */
static int option_group(struct parser *p, const char *group)
{
	char *buf = strdup(group);
	char *out = buf, *start = buf;
	const char *in = group;

	if (!buf)
		return no_memory();
	for (;; in++) {
		if (*in == ',' || *in == '\0') {
			*out = '\0';
			if (one_option(p, start, true) == -1) {
				free(buf);
				return -1;
			}
			if (*in == '\0')
				break;
			out = start;
			continue;
		}
		if (in[0] == '\\' && in[1] != '\0') {
			in++;
			if (in[0] >= '0' && in[0] <= '3' && in[1] >= '0' && in[1] <= '7' &&
			    in[2] >= '0' && in[2] <= '7') {
				*out++ = (char)((in[0] - '0') * 64 + (in[1] - '0') * 8 +
						(in[2] - '0'));
				in += 2;
				continue;
			}
		}
		*out++ = *in;
	}
	free(buf);
	return 0;
}

static int one_argument(struct parser *p, const char *arg)
{
	if (p->after_dashes || arg[0] != '-')
		return give_to_proc(p, arg, FUSE_OPT_KEY_NONOPT, false);
	if (arg[1] == 'o') {
		if (arg[2])
			return option_group(p, arg + 2);
		if (p->at + 1 >= p->argc) {
			fuse_log(FUSE_LOG_ERR, "fuse: option `%s' needs an argument\n", arg);
			return -1;
		}
		return option_group(p, p->argv[++p->at]);
	}
	if (arg[1] == '-' && arg[2] == '\0') {
		if (fuse_opt_add_arg(&p->out, arg) < 0)
			return -1;
		p->after_dashes = p->out.argc;
		return 0;
	}
	return one_option(p, arg, false);
}

static int parse(struct parser *p)
{
	if (fuse_opt_add_arg(&p->out, p->argv[0]) < 0)
		return -1;
	for (p->at = 1; p->at < p->argc; p->at++)
		if (one_argument(p, p->argv[p->at]) == -1)
			return -1;
	if (p->kept && (fuse_opt_insert_arg(&p->out, 1, "-o") < 0 ||
			fuse_opt_insert_arg(&p->out, 2, p->kept) < 0))
		return -1;
	/* A "--" with nothing after it is dropped. The index is where it was handed on, before
	 * the -o group went in front of it, as libfuse compares it. */
	if (p->after_dashes && p->after_dashes == p->out.argc &&
	    strcmp(p->out.argv[p->out.argc - 1], "--") == 0) {
		free(p->out.argv[--p->out.argc]);
		p->out.argv[p->out.argc] = NULL;
	}
	return 0;
}

int fuse_opt_parse(struct fuse_args *args, void *data, const struct fuse_opt opts[],
		   fuse_opt_proc_t proc)
{
	struct parser p = {.data = data, .table = opts, .proc = proc};
	int res;

	if (!args || !args->argv || !args->argc)
		return 0;
	p.argc = args->argc;
	p.argv = args->argv;
	res = parse(&p);
	if (res != -1) {
		struct fuse_args old = *args;

		*args = p.out;
		p.out = old;
	}
	free(p.kept);
	fuse_opt_free_args(&p.out);
	return res;
}
