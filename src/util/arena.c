/*
 * Batch arena: a list of 256 KiB chunks reused from batch to batch; a
 * request larger than that gets a chunk of its own, freed at the reset so
 * one huge record does not pin its memory for the rest of the run.
 */
#include "util/arena.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN (256 * 1024)

struct as_arena_chunk {
	as_arena_chunk *next;
	size_t size, off;
	char data[];
};

void as_arena_init(as_arena *a)
{
	a->head = a->cur = NULL;
	a->used = 0;
}

static as_arena_chunk *chunk_new(size_t size)
{
	as_arena_chunk *c = malloc(sizeof(*c) + size);

	if (!c)
		return NULL;
	c->size = size;
	c->off = 0;
	c->next = NULL;
	return c;
}

void *as_arena_alloc(as_arena *a, size_t n)
{
	size_t need = (n + 7) & ~(size_t)7;
	as_arena_chunk *c = a->cur;
	void *p;

	if (need < n)
		return NULL;
	while (!c || c->size - c->off < need) {
		if (c && c->next && c->next->size >= need) {
			c = c->next;
			c->off = 0;
			continue;
		}
		as_arena_chunk *nc =
			chunk_new(need > CHUNK_MIN ? need : CHUNK_MIN);
		if (!nc)
			return NULL;
		if (!c) {
			nc->next = a->head;
			a->head = nc;
		} else {
			nc->next = c->next;
			c->next = nc;
		}
		c = nc;
	}
	a->cur = c;
	p = c->data + c->off;
	c->off += need;
	a->used += need;
	return p;
}

char *as_arena_strndup(as_arena *a, const char *s, size_t n)
{
	char *p = as_arena_alloc(a, n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void as_arena_reset(as_arena *a)
{
	as_arena_chunk **pp = &a->head;

	while (*pp) {
		as_arena_chunk *c = *pp;

		if (c->size > CHUNK_MIN) {
			*pp = c->next;
			free(c);
			continue;
		}
		c->off = 0;
		pp = &c->next;
	}
	a->cur = a->head;
	a->used = 0;
}

void as_arena_free(as_arena *a)
{
	as_arena_chunk *c = a->head;

	while (c) {
		as_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = a->cur = NULL;
	a->used = 0;
}
