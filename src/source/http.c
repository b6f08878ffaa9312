/*
 * HTTP JSON API source (libcurl multi interface).
 */
#include "source/source.h"

int as_http_source_open(as_source **out, const as_source_cfg *cfg,
			const as_source_opts *o, as_error *err)
{
	(void)cfg;
	*out = NULL;
	return as_error_set(err, AS_EUSAGE, "dataset %s: the http source is not "
			    "built into this version", o->dataset);
}
