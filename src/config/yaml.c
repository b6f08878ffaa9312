/*
 * The YAML half of the config reader: libfyaml's event parser feeds a small
 * tree that keeps where every node starts (0.7.12 exports no start mark for
 * document nodes), rejecting duplicate keys, anchors and oversized input;
 * libfyaml's own diagnostics are caught and turned into one line.
 */
#include "config/yaml.h"

#include <libfyaml.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the YAML tree ---------------------------------------------------- */

static int vfail_at(cx *c, int line, int col, const char *fmt, va_list ap)
{
	char msg[AS_ERROR_MSG_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line > 0)
		return as_error_set(c->err, AS_EUSAGE, "%s:%d:%d: %s", c->file,
				    line, col, msg);
	return as_error_set(c->err, AS_EUSAGE, "%s: %s", c->file, msg);
}

int as_cfg_fail_at(cx *c, int line, int col, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail_at(c, line, col, fmt, ap);
	va_end(ap);
	return rc;
}

int as_cfg_fail(cx *c, const ynode *n, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail_at(c, n ? n->line : 0, n ? n->col : 0, fmt, ap);
	va_end(ap);
	return rc;
}

int as_cfg_oom(cx *c)
{
	return as_error_set(c->err, AS_ENOMEM, "%s: out of memory", c->file);
}

/* p with room for n + 1 items (*cap allocated); NULL, p intact, on ENOMEM. */
void *as_cfg_grow(void *p, size_t n, size_t *cap, size_t size)
{
	size_t want = *cap ? *cap * 2 : 8;

	if (n < *cap)
		return p;
	p = realloc(p, want * size);
	if (p)
		*cap = want;
	return p;
}

/* A value quoted in a message, cut short so the line stays readable. */
const char *as_cfg_shown(const char *s, char *buf, size_t cap)
{
	if (strlen(s) < cap)
		return s;
	memcpy(buf, s, cap - 4);
	memcpy(buf + cap - 4, "...", 4);
	return buf;
}

static int node_new(cx *c, enum ykind kind, const struct fy_mark *m,
		    ynode **out)
{
	int line = m ? m->line + 1 : 0, col = m ? m->column + 1 : 0;
	ynode *n;

	if (c->nnodes >= CONFIG_MAX_NODES)
		return as_cfg_fail_at(c, line, col,
				      "too many YAML nodes (at most %d)",
				      CONFIG_MAX_NODES);
	n = calloc(1, sizeof(*n));
	if (!n)
		return as_cfg_oom(c);
	n->kind = kind;
	n->line = line;
	n->col = col;
	n->next = c->nodes;
	c->nodes = n;
	c->nnodes++;
	*out = n;
	return 0;
}

void as_cfg_tree_free(cx *c)
{
	ynode *n, *next;

	for (n = c->nodes; n; n = next) {
		next = n->next;
		free(n->text);
		free(n->kids);
		free(n);
	}
}

size_t as_cfg_map_len(const ynode *m)
{
	return m && m->kind == Y_MAP ? m->nkids / 2 : 0;
}

const char *as_cfg_kind_name(const ynode *n)
{
	static const char *const names[] = {"nothing", "a scalar", "a mapping",
					    "a list"};

	return names[n->kind];
}

/* ---- building the tree from libfyaml events ---------------------------- */

typedef struct builder {
	cx *c;
	ynode *stack[CONFIG_MAX_DEPTH];
	int depth;
	ynode *root;
	int docs;
} builder;

static bool at_key(const builder *b)
{
	const ynode *p = b->depth ? b->stack[b->depth - 1] : NULL;

	return p && p->kind == Y_MAP && p->nkids % 2 == 0;
}

/* Hang n under the open collection; keys must be unique scalars. */
static int attach(builder *b, ynode *n)
{
	ynode *p = b->depth ? b->stack[b->depth - 1] : NULL, **kids;

	if (!p) {
		b->root = n;
		return 0;
	}
	if (at_key(b)) {
		if (n->kind != Y_SCALAR)
			return as_cfg_fail(
				b->c, n, "mapping keys must be plain strings");
		if (p->nkids / 2 >= CONFIG_MAX_KEYS)
			return as_cfg_fail(b->c, n,
					   "too many keys in one mapping");
		for (size_t i = 0; i < p->nkids; i += 2)
			if (!strcmp(p->kids[i]->text, n->text))
				return as_cfg_fail(
					b->c, n,
					"duplicate key '%s' (first at line %d)",
					SHOWN(n->text), p->kids[i]->line);
	}
	if (!(kids = as_cfg_grow(p->kids, p->nkids, &p->cap, sizeof(*kids))))
		return as_cfg_oom(b->c);
	p->kids = kids;
	kids[p->nkids++] = n;
	return 0;
}

static bool null_text(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") ||
	       !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int on_scalar(builder *b, struct fy_event *e)
{
	struct fy_token *v = e->scalar.value;
	size_t len = 0;
	const char *s = v ? fy_token_get_text(v, &len) : NULL;
	ynode *n = NULL;
	int rc;

	rc = node_new(b->c, Y_SCALAR, fy_event_start_mark(e), &n);
	if (rc)
		return rc;
	if (!s)
		s = "", len = 0;
	if (memchr(s, '\0', len))
		return as_cfg_fail(b->c, n, "NUL byte in a YAML scalar");
	/* node_new() sets n when it returns 0. */
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	if (!(n->text = strndup(s, len)))
		return as_cfg_oom(b->c);
	n->quoted = v && fy_token_scalar_style(v) != FYSS_PLAIN;
	if (!at_key(b) && !e->scalar.tag && null_text(n->text) &&
	    (!v || fy_token_scalar_style(v) == FYSS_PLAIN))
		n->kind = Y_NULL;
	return attach(b, n);
}

static int on_open(builder *b, struct fy_event *e, enum ykind kind)
{
	ynode *n = NULL;
	int rc;

	rc = node_new(b->c, kind, fy_event_start_mark(e), &n);
	if (!rc)
		rc = attach(b, n);
	if (rc)
		return rc;
	if (b->depth == CONFIG_MAX_DEPTH)
		return as_cfg_fail(b->c, n, "YAML nested too deeply");
	b->stack[b->depth++] = n;
	return 0;
}

/*
 * Anchors and aliases are refused: a config has no need for them, and
 * without them no value can stand for another (nor multiply).
 */
static int on_event(builder *b, struct fy_event *e)
{
	struct fy_token *anchor =
		e->type == FYET_SCALAR		 ? e->scalar.anchor
		: e->type == FYET_MAPPING_START	 ? e->mapping_start.anchor
		: e->type == FYET_SEQUENCE_START ? e->sequence_start.anchor
						 : NULL;
	const struct fy_mark *m =
		anchor ? fy_token_start_mark(anchor) : fy_event_start_mark(e);
	int line = m ? m->line + 1 : 0, col = m ? m->column + 1 : 0;

	if (anchor || e->type == FYET_ALIAS)
		return as_cfg_fail_at(
			b->c, line, col,
			"YAML anchors and aliases are not supported");
	switch (e->type) {
	case FYET_DOCUMENT_START:
		return ++b->docs == 1
			       ? 0
			       : as_cfg_fail_at(
					 b->c, line, col,
					 "only one YAML document is allowed");
	case FYET_MAPPING_START: return on_open(b, e, Y_MAP);
	case FYET_SEQUENCE_START: return on_open(b, e, Y_SEQ);
	case FYET_MAPPING_END:
	case FYET_SEQUENCE_END: b->depth -= b->depth > 0; return 0;
	case FYET_SCALAR: return on_scalar(b, e);
	default: return 0;
	}
}

static void diag_sink(struct fy_diag *diag, void *user, const char *buf,
		      size_t len)
{
	/* Diagnostics are collected and turned into one error line. */
	(void)diag, (void)user, (void)buf, (void)len;
}

static int yaml_error(cx *c, struct fy_diag *diag)
{
	struct fy_diag_error *e;
	void *it = NULL;

	/* libfyaml's collected positions are already 1-based. */
	while ((e = fy_diag_errors_iterate(diag, &it)))
		if (e->type >= FYET_ERROR)
			return as_cfg_fail_at(c, e->line, e->column, "%s",
					      e->msg ? e->msg
						     : "YAML syntax error");
	return as_cfg_fail_at(c, 0, 0, "YAML syntax error");
}

/*
 * YAML text is UTF-8.  Checked before libfyaml sees it: libfyaml 0.7
 * (Debian 12) loops forever on a directive line ("%...") holding an invalid
 * sequence (found by tests/fuzz/fuzz_config).  Returns 0, or the 1-based
 * line and column of the first bad byte.
 */
static int utf8_invalid_at(const unsigned char *s, size_t len, int *line,
			   int *col)
{
	size_t i = 0, bol = 0;

	*line = 1;
	while (i < len) {
		unsigned char b = s[i];
		size_t n = b < 0x80		? 1
			   : (b & 0xe0) == 0xc0 ? 2
			   : (b & 0xf0) == 0xe0 ? 3
			   : (b & 0xf8) == 0xf0 ? 4
						: 0;
		uint32_t cp = n == 1   ? b
			      : n == 2 ? b & 0x1f
			      : n == 3 ? b & 0x0f
				       : b & 0x07;

		if (n == 0 || i + n > len)
			goto bad;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and code points past U+10FFFF. */
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
		    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		if (b == '\n') {
			(*line)++;
			bol = i + 1;
		}
		i += n;
	}
	return 0;
bad:
	*col = (int)(i - bol) + 1;
	return 1;
}

int as_cfg_build_tree(cx *c, const char *text, size_t len, ynode **root)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_parser *fyp = NULL;
	struct fy_diag *diag;
	struct fy_event *e;
	builder b;
	int rc = 0;

	memset(&b, 0, sizeof(b));
	b.c = c;
	{
		int line, col;

		if (utf8_invalid_at((const unsigned char *)text, len, &line,
				    &col))
			return as_cfg_fail_at(c, line, col,
					      "invalid UTF-8 (a config "
					      "file must be UTF-8 text)");
	}
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = diag_sink;
	dcfg.colorize = false;
	diag = fy_diag_create(&dcfg);
	if (!diag)
		return as_cfg_oom(c);
	fy_diag_set_collect_errors(diag, true);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2;
	pcfg.diag = diag;
	fyp = fy_parser_create(&pcfg);
	if (!fyp || fy_parser_set_string(fyp, text, len)) {
		rc = as_cfg_oom(c);
		goto done;
	}
	while (!rc && (e = fy_parser_parse(fyp))) {
		rc = on_event(&b, e);
		fy_parser_event_free(fyp, e);
	}
	if (!rc && (fy_parser_get_stream_error(fyp) || fy_diag_got_error(diag)))
		rc = yaml_error(c, diag);
	*root = b.root;
done:
	if (fyp)
		fy_parser_destroy(fyp);
	fy_diag_destroy(diag);
	return rc;
}
