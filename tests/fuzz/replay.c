/*
 * Runs a fuzz target over files without libFuzzer: the regression replay of
 * the saved corpus in any build (gcc, no sanitizer), and what the ctest
 * entries use.  Arguments are files or directories (read one level deep).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long ran;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return -1;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	/* Named first, so a crash shows which input did it. */
	fprintf(stderr, "replay: %s\n", path);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	ran++;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent *e;
		char **names = NULL;
		size_t n = 0;
		DIR *d;

		if (stat(argv[i], &st)) {
			fprintf(stderr, "replay: %s: not found\n", argv[i]);
			return 2;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]))
				return 2;
			continue;
		}
		if (!(d = opendir(argv[i])))
			return 2;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				names = realloc(names,
						(n + 1) * sizeof(*names));
				names[n] = malloc(strlen(argv[i]) +
						  strlen(e->d_name) + 2);
				sprintf(names[n++], "%s/%s", argv[i],
					e->d_name);
			}
		closedir(d);
		qsort(names, n, sizeof(*names), by_name);
		for (size_t k = 0; k < n; k++) {
			if (run_file(names[k]))
				return 2;
			free(names[k]);
		}
		free(names);
	}
	printf("replay: %ld inputs, no failure\n", ran);
	return 0;
}
