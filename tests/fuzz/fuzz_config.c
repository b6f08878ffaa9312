/*
 * Fuzz target: the config reader (YAML through libfyaml into validated
 * structs, ${ENV} expansion, durations, sizes, errors with file:line:col).
 * A config that parses is walked (every dataset looked up by name, the
 * redactor run over a message) so its structs are read back, and the error
 * of one that does not must be one line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	as_log_set_level(AS_LOG_QUIET);
	/* Referenced by the seeds' ${VAR} expansions. */
	setenv("ATOMSYNC_FUZZ_SECRET", "s3cr3t-value", 1);
	setenv("ATOMSYNC_FUZZ_EMPTY", "", 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_config *cfg = NULL;
	as_error err;

	if (size > 65536)
		return 0;
	as_error_clear(&err);
	if (as_config_parse(&cfg, (const char *)data, size, "fuzz.yml", &err) ==
	    0) {
		char msg[256];

		for (size_t i = 0; i < cfg->ndatasets; i++)
			if (as_config_dataset(cfg, cfg->datasets[i].name) ==
			    NULL)
				abort(); /* a dataset it parsed must be found by
					    name */
		/* The redactor walks every header and param of every dataset.
		 */
		snprintf(msg, sizeof(msg), "x s3cr3t-value y");
		as_config_redact(cfg, msg, sizeof(msg));
	} else if (strchr(err.msg, '\n') || err.msg[0] == '\0') {
		fprintf(stderr, "config error is not one line: [%s]\n",
			err.msg);
		abort();
	}
	as_config_free(cfg);
	return 0;
}
