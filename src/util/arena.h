/*
 * A bump allocator for one batch of rows: many small allocations, freed
 * together by as_arena_reset, which keeps standard-size chunks for reuse.
 */
#ifndef AS_UTIL_ARENA_H
#define AS_UTIL_ARENA_H

#include <stddef.h>

typedef struct as_arena_chunk as_arena_chunk;

typedef struct as_arena {
	as_arena_chunk *head; /* first chunk */
	as_arena_chunk *cur;  /* chunk being filled */
	size_t used;	      /* bytes handed out since the last reset */
} as_arena;

void as_arena_init(as_arena *a);
void *as_arena_alloc(as_arena *a, size_t n); /* 8-byte aligned; NULL on OOM */
char *as_arena_strndup(as_arena *a, const char *s, size_t n);
void as_arena_reset(as_arena *a);
void as_arena_free(as_arena *a);

#endif
