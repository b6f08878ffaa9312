/* simdjson on-demand behind a C call: parse one line, visit every field of
 * the top-level object, return the sum of string lengths plus integers
 * (so nothing is optimized away), or -1 on any error. */
#include <simdjson.h>

#include <cstring>

using namespace simdjson;

static ondemand::parser parser;

extern "C" long simd_line(const char *s, size_t n, size_t cap)
{
	long acc = 0;
	/* simdjson needs SIMDJSON_PADDING readable bytes past the end. */
	padded_string_view v(s, n, cap);
	ondemand::document doc;

	if (parser.iterate(v).get(doc))
		return -1;
	ondemand::object obj;
	if (doc.get_object().get(obj))
		return -1;
	for (auto field : obj) {
		std::string_view key;
		if (field.unescaped_key().get(key))
			return -1;
		ondemand::value val;
		if (field.value().get(val))
			return -1;
		ondemand::json_type t;
		if (val.type().get(t))
			return -1;
		switch (t) {
		case ondemand::json_type::string: {
			std::string_view sv;
			if (val.get_string().get(sv))
				return -1;
			acc += (long)sv.size();
			break;
		}
		case ondemand::json_type::number: {
			ondemand::number num;
			if (val.get_number().get(num))
				return -1;
			if (num.is_int64())
				acc += (long)num.get_int64();
			break;
		}
		case ondemand::json_type::boolean: {
			bool b;
			if (val.get_bool().get(b))
				return -1;
			acc += b;
			break;
		}
		default: {
			/* nested values are skipped (the benchmark data has
			 * none) */
			acc += (long)val.raw_json_token().size();
			break;
		}
		}
	}
	return acc;
}
