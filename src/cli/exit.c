/*
 * Exit codes, in one place.  0 published (or nothing to do); 1 the run
 * failed and nothing was published; 2 usage or configuration error; 3 a
 * guard refused the publish; 4 another worker holds the lease.
 */
#include "cli/cli.h"

int as_exit_code(int rc)
{
	switch (rc) {
	case AS_OK: return AS_EXIT_OK;
	case AS_EUSAGE: return AS_EXIT_USAGE;
	case AS_EREFUSED: return AS_EXIT_REFUSED;
	case AS_ELEASE:
	case AS_EFENCED: return AS_EXIT_LEASED;
	default: return AS_EXIT_FAILED;
	}
}

/*
 * Several datasets in one command: a configuration error outranks a failed
 * run, which outranks a refusal.  A dataset skipped because another worker
 * runs it is not a failure of this worker (many workers share one config);
 * only when every dataset was skipped is the result 4.
 */
int as_exit_combine(const int *codes, size_t n)
{
	int usage = 0, failed = 0, refused = 0, leased = 0;

	for (size_t i = 0; i < n; i++) {
		usage |= codes[i] == AS_EXIT_USAGE;
		failed |= codes[i] == AS_EXIT_FAILED;
		refused |= codes[i] == AS_EXIT_REFUSED;
		leased += codes[i] == AS_EXIT_LEASED;
	}
	if (usage)
		return AS_EXIT_USAGE;
	if (failed)
		return AS_EXIT_FAILED;
	if (refused)
		return AS_EXIT_REFUSED;
	if (n > 0 && (size_t)leased == n)
		return AS_EXIT_LEASED;
	return AS_EXIT_OK;
}
