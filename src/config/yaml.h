/*
 * Private to the config reader: the YAML tree with line:col on every node
 * (yaml.c builds it from libfyaml's events), the reading context and the
 * error helpers every file of src/config/ uses.
 */
#ifndef AS_CONFIG_YAML_H
#define AS_CONFIG_YAML_H

#include <stdarg.h>
#include <stddef.h>

#include "config/config.h"

/* A config file, not a data file. */
#define CONFIG_MAX_BYTES (4 * 1024 * 1024)
#define CONFIG_MAX_NODES 100000
#define CONFIG_MAX_DEPTH 64
#define CONFIG_MAX_KEYS 4096 /* per mapping: duplicate checks stay cheap */

enum ykind { Y_NULL, Y_SCALAR, Y_MAP, Y_SEQ };

typedef struct ynode ynode;
struct ynode {
	enum ykind kind;
	int line, col; /* 1-based */
	char *text;    /* scalars and nulls: NUL-terminated */
	int quoted;    /* a quoted or block scalar: always a string */
	ynode **kids;  /* map: key, value, key, value, ...; seq: the items */
	size_t nkids, cap;
	ynode *next; /* every node is on its context's list */
};

typedef struct cx {
	as_config *cfg;
	as_error *err;
	const char *file; /* cfg->path */
	ynode *nodes;
	size_t nnodes;
} cx;

int as_cfg_fail_at(cx *c, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int as_cfg_fail(cx *c, const ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int as_cfg_oom(cx *c);
/* p with room for n + 1 items (*cap allocated); NULL, p intact, on ENOMEM. */
void *as_cfg_grow(void *p, size_t n, size_t *cap, size_t size);
/* A value quoted in a message, cut short so the line stays readable. */
const char *as_cfg_shown(const char *s, char *buf, size_t cap);
#define SHOWN(s) as_cfg_shown((s), (char[48]){0}, 48)

/* Build the tree of text (name for messages in c->file). */
int as_cfg_build_tree(cx *c, const char *text, size_t len, ynode **root);
void as_cfg_tree_free(cx *c);
size_t as_cfg_map_len(const ynode *m);
const char *as_cfg_kind_name(const ynode *n);

#endif
