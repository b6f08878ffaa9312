/*
 * atomsync serve: the scheduler daemon (daemon.c), its HTTP endpoints
 * (http.c) and status page (page.c).  Many daemons may share one store:
 * they agree through the dataset leases and the run records only.
 */
#ifndef AS_SERVE_SERVE_H
#define AS_SERVE_SERVE_H

#include <pthread.h>

#include "cli/cli.h"
#include "config/config.h"
#include "engine/sync.h"
#include "serve/schedule.h"
#include "store/store.h"

typedef struct as_serve as_serve;

/* One dataset of the config, as the scheduler sees it.  Jobs live until
 * the daemon exits (a reload marks dropped datasets removed). */
typedef struct as_job {
	struct as_job *next_job;
	as_serve *sv;
	char *name;	    /* owned */
	int scheduled;	    /* it has a schedule */
	int removed;	    /* no longer in the config */
	as_sched sched;	    /* borrows from the config it was built from */
	as_sched_last last; /* the records at the last read */
	double next;	    /* due, Unix seconds; -1: never */
	double refreshed;   /* monotonic seconds of that read; 0: re-read */
	double not_before;  /* monotonic: no attempt before (lease refused) */
	int active;	    /* a worker of this daemon runs it */
	int done;	    /* the worker has ended: join it */
	int run_now;	    /* POST /api/run asked for a run */
	int stale;	    /* the records could not be read */
	int manual;	    /* the worker's run was asked for */
	pthread_t th;
	const as_config *run_cfg; /* the config the worker runs with */
} as_job;

struct as_serve {
	as_cli *cli;
	const char *listen; /* ADDR:PORT */
	int once;	    /* one pass: due datasets, then exit */
	int log_json;	    /* --log-format json */
	pthread_mutex_t mu; /* everything below */
	as_config *cfg;	    /* current; replaced ones are kept until exit */
	as_config **old;
	size_t nold;
	as_job *jobs;
	int running;  /* workers */
	double tick;  /* monotonic seconds of the last scheduler pass */
	int stopping; /* SIGTERM: no new runs */
	int *codes;   /* --once: the exit code of each run (exit.c) */
	size_t ncodes;
	void *http;	/* struct MHD_Daemon */
	char bound[64]; /* the address actually listened on */
};

/* Log one line on stderr (text, or one JSON object with --log-format
 * json).  fields: NULL or a JSON object, consumed. */
void as_serve_log(as_serve *sv, const char *level, const char *event,
		  const char *dataset, json_t *fields, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

int as_serve_main(as_serve *sv);

/* HTTP (http.c): listen on sv->listen; 0 or -1 with err. */
int as_http_start(as_serve *sv, as_error *err);
void as_http_stop(as_serve *sv);

/* The status page (page.c) into out. */
int as_page_render(as_serve *sv, const as_config *cfg, as_store *st,
		   as_buf *out, as_error *err);

/* Queue a run of dataset now (POST /api/run); 0, or -1 if unknown. */
int as_serve_run_now(as_serve *sv, const char *dataset);

#endif
