/*
 * Private to src/config/: what the files of the config reader share (the
 * mapping reader's tables and contexts, the scalar parsers, ${VAR}
 * expansion).  The YAML tree and the error helpers are in yaml.h.
 */
#ifndef AS_CONFIG_INT_H
#define AS_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/yaml.h"

#define IDENT_MAX 63 /* PostgreSQL cuts longer names */
#define WHERE_MAX 256
#define WORD_CHARS                                                             \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* One mapping being read, and how to name it in messages. */
typedef struct sect {
	cx *c;
	const ynode *map;
	const char *where;  /* "in dataset 'addons'" */
	const ynode *owner; /* the key that introduced it; NULL at the top */
} sect;

/* One dataset being read (dataset.c, source.c). */
typedef struct dsctx {
	sect s;
	as_dataset_cfg *ds;
	char where[WHERE_MAX]; /* "in dataset 'addons'" */
} dsctx;

/* ---- the table of a mapping's keys (reader.c) ------------------------- */

enum ftype {
	T_OTHER,    /* read by code of its own */
	T_STR,	    /* char *, never empty */
	T_PATH,	    /* char *, dotted path */
	T_URL,	    /* char *, http:// or https:// */
	T_IDENT,    /* char *, plain identifier */
	T_SCHEDULE, /* char *, a duration above 0 or a cron expression */
	T_TZ,	    /* char *, a time zone of the system's database */
	T_INT,	    /* int64_t in [min, max] */
	T_INT32,    /* int in [min, max] */
	T_REAL,	    /* double in [min, max], (min, max] with F_OPEN */
	T_BOOL,	    /* int */
	T_NOT_BOOL, /* int, the negation (tls_verify -> insecure) */
	T_DURATION, /* int64_t ms >= min */
	T_ENUM,	    /* enum (an int) indexed in names */
	T_RATE,	    /* double events per second */
	T_SIZE,	    /* int64_t bytes in [min, max] */
};

enum {
	F_REQUIRED = 1,
	F_SECRET = 2, /* values of ${VAR} here are redacted everywhere */
	F_OPEN = 4,   /* T_REAL: min itself is excluded */
};

typedef struct field {
	const char *key;
	enum ftype type;
	unsigned flags;
	size_t off; /* in the struct the table describes */
	int64_t min, max;
	const char *const *names; /* T_ENUM, NULL entries not selectable */
	size_t nnames;
} field;

#define OTHER(k)                                                               \
	{                                                                      \
		k, T_OTHER, 0, 0, 0, 0, NULL, 0                                \
	}
#define FLD(st, k, t, fl, m, lo, hi)                                           \
	{                                                                      \
		k, t, fl, offsetof(st, m), lo, hi, NULL, 0                     \
	}
#define ENM(st, k, m, names)                                                   \
	{                                                                      \
		k, T_ENUM, 0, offsetof(st, m), 0, 0, names, NELEM(names)       \
	}

/* Checks one item of a list read by as_cfg_read_list; 0 if it is fine. */
typedef int (*item_check)(const sect *s, const ynode *n, const char *text,
			  const void *arg);

as_config_loc as_cfg_loc(cx *c, const ynode *n);
/* Refuses any key of s not in the table f (with a "did you mean"). */
int as_cfg_check_keys(const sect *s, const field *f, size_t n);
const ynode *as_cfg_lookup(const sect *s, const char *key,
			   const ynode **keynode);
int as_cfg_missing(const sect *s, const char *key);
/* "'key' where must be want, got ..." (text NULL: name v's kind). */
int as_cfg_bad_value(const sect *s, const ynode *v, const char *key,
		     const char *want, const char *text);
int as_cfg_read_scalar(const sect *s, const char *key, const char *want,
		       unsigned flags, char **text, const ynode **vn);
/* Takes ownership of text, whether it succeeds or not. */
int as_cfg_field_store(const sect *s, const field *f, const ynode *v,
		       char *text, void *base);
/* Every field of f but T_OTHER ones, stored in base. */
int as_cfg_read_fields(const sect *s, const field *f, size_t n, void *base);
int as_cfg_read_section(const sect *s, const char *key, const char *where,
			const field *f, size_t n, void *base, sect *out);
int as_cfg_read_list(const sect *s, const char *key, item_check chk,
		     const void *arg, char ***dst, size_t *ndst);
void as_cfg_free_list(char **v, size_t n);

/* ---- ${VAR} expansion (expand.c) -------------------------------------- */

/* n's text expanded into *out (malloc'd); secret: keep the values used. */
int as_cfg_expand(cx *c, const ynode *n, bool secret, char **out, int *used);
int as_cfg_add_unique(cx *c, char ***v, size_t *n, const char *s);

/* ---- scalar parsers (units.c) ----------------------------------------- */

bool as_cfg_parse_i64(const char *s, int64_t *out);
bool as_cfg_parse_f64(const char *s, double *out);
bool as_cfg_parse_bool(const char *s, int *out);
int64_t as_cfg_parse_size(const char *s);
bool as_cfg_valid_var(const char *s, size_t len);
bool as_cfg_is_ident(const char *s);
bool as_cfg_valid_path(const char *s);
bool as_cfg_is_url(const char *s);
const char *as_cfg_hint(const char *word, const char *const *names, size_t n,
			char *buf, size_t cap);
#define HINT(w, names, n) as_cfg_hint((w), (names), (n), (char[96]){0}, 96)

/* ---- datasets, sources, the whole file -------------------------------- */

int as_cfg_parse_dataset(cx *c, const ynode *kn, const ynode *vn,
			 as_dataset_cfg *ds);
int as_cfg_parse_source(dsctx *d);
/* A relative *path made relative to the config file's directory. */
int as_cfg_resolve_path(cx *c, char **path);

#endif
