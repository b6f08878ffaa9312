/*
 * Names of the shared model types (model/model.h).
 */
#include "model/model.h"

const char *const as_type_names[7] = {NULL,	 "integer", "real",	"text",
				      "boolean", "json",    "timestamp"};
const char *const as_mode_names[4] = {"full", "incremental", "scoped",
				      "append"};
const char *const as_history_names[3] = {"none", "snapshot", "scd2"};
const char *const as_schema_names[2] = {"infer", "json"};
const char *const as_contract_names[4] = {"evolve", "freeze", "discard_value",
					  "discard_row"};

const char *as_mode_name(as_mode m)
{
	return (unsigned)m < 4 ? as_mode_names[m] : "unknown";
}

const char *as_type_name(as_type t)
{
	if (t == AS_TYPE_AUTO)
		return "auto";
	return (unsigned)t < 7 ? as_type_names[t] : "unknown";
}
