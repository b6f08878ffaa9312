/*
 * The flat-record scanner (util/jflat.h) on simdjson's On-Demand parser
 * (Debian's libsimdjson).  simdjson validates the UTF-8 and the structure
 * of the whole text; this file adds only the rules in which jansson
 * (util/json.c) and simdjson could take a text differently, and declines
 * there: declining is always safe, accepting differently is not
 * (tests/unit/test_jflat.c compares the two on the JSON test suite).
 *
 * Declined: anything but one object of scalars, a \u escape that decodes
 * to NUL or to a surrogate left alone, a number simdjson reads as a real
 * that jansson reads as an integer (no ".", "e" or "E"), an integer beyond
 * 64 bits, a real out of range, a duplicate key, a text larger than
 * AS_JFLAT_MAX_TEXT (so the parser's buffers stay small), more than
 * AS_JFLAT_MAX_FIELDS fields.
 *
 * The only C++ in atomsync; nothing escapes it but as_jflat_scan.  The
 * fields' strings point into this thread's parser and stay valid until its
 * next call.
 */
#include <simdjson.h>

#include <cstring>
#include <memory>
#include <string_view>

extern "C" {
#include "util/jflat.h"
}

using namespace simdjson;

namespace
{

struct scanner {
	ondemand::parser parser{AS_JFLAT_MAX_TEXT};
	/* The text copied with the padding simdjson reads past its end. */
	char text[AS_JFLAT_MAX_TEXT + SIMDJSON_PADDING];
};

/* Made on a thread's first call, freed when the thread ends. */
thread_local std::unique_ptr<scanner> tls;

/* Decoded text from \u escapes that jansson takes as they are: no NUL,
 * no surrogate left alone (simdjson may pass one through, as invalid
 * UTF-8). */
bool plain_text(std::string_view s)
{
	return !std::memchr(s.data(), '\0', s.size()) &&
	       simdjson::validate_utf8(s.data(), s.size());
}

/* A raw JSON token holding a \u escape. */
bool has_u_escape(std::string_view raw)
{
	for (size_t i = 0; i + 1 < raw.size(); i++) {
		if (raw[i] != '\\')
			continue;
		if (raw[i + 1] == 'u')
			return true;
		i++; /* skip the escaped character */
	}
	return false;
}

/* A raw key (from after its opening quote) holding a \u escape. */
bool key_has_u_escape(const char *p)
{
	for (; *p != '"'; p++) {
		if (*p != '\\')
			continue;
		if (p[1] == 'u')
			return true;
		p++;
	}
	return false;
}

bool number_field(ondemand::value &val, as_jfield *f)
{
	std::string_view raw = val.raw_json_token();
	ondemand::number num;

	if (val.get_number().get(num))
		return false; /* beyond 64 bits, or out of range */
	if (num.is_int64()) {
		f->kind = AS_JF_INT;
		f->i = num.get_int64();
		return true;
	}
	if (!num.is_double())
		return false; /* an unsigned beyond INT64_MAX */
	/* jansson reads a number without '.', 'e' or 'E' as an integer. */
	if (raw.find_first_of(".eE") == std::string_view::npos)
		return false;
	f->kind = AS_JF_REAL;
	f->r = num.get_double();
	return true;
}

bool value_field(ondemand::value &val, as_jfield *f)
{
	ondemand::json_type t;

	if (val.type().get(t))
		return false;
	switch (t) {
	case ondemand::json_type::string: {
		std::string_view s;

		bool u = has_u_escape(val.raw_json_token());

		if (val.get_string().get(s) || (u && !plain_text(s)))
			return false;
		f->kind = AS_JF_STRING;
		f->s = s.data();
		f->n = s.size();
		return true;
	}
	case ondemand::json_type::number: return number_field(val, f);
	case ondemand::json_type::boolean: {
		bool b;

		if (val.get_bool().get(b))
			return false;
		f->kind = b ? AS_JF_TRUE : AS_JF_FALSE;
		return true;
	}
	case ondemand::json_type::null: {
		bool null;

		if (val.is_null().get(null) || !null)
			return false;
		f->kind = AS_JF_NULL;
		return true;
	}
	default: return false; /* an object or an array */
	}
}

bool duplicate(const as_jflat *out, std::string_view key)
{
	for (size_t k = 0; k < out->n; k++)
		if (out->f[k].klen == key.size() &&
		    !std::memcmp(out->f[k].key, key.data(), key.size()))
			return true;
	return false;
}

bool scan_object(ondemand::document &doc, as_jflat *out)
{
	ondemand::object obj;

	if (doc.get_object().get(obj))
		return false;
	for (auto result : obj) {
		ondemand::field field;
		std::string_view key;
		ondemand::value val;

		if (std::move(result).get(field) ||
		    out->n == AS_JFLAT_MAX_FIELDS)
			return false;
		bool u = key_has_u_escape(field.key().raw());
		if (field.unescaped_key().get(key) || (u && !plain_text(key)) ||
		    duplicate(out, key))
			return false;
		as_jfield *f = &out->f[out->n];
		f->key = key.data();
		f->klen = key.size();
		val = field.value();
		if (!value_field(val, f))
			return false;
		out->n++;
	}
	/* Nothing after the object. */
	return doc.current_location().error() == OUT_OF_BOUNDS;
}

} // namespace

extern "C" int as_jflat_scan(const char *text, size_t len, as_jflat *out)
{
	ondemand::document doc;

	out->n = 0;
	/* A byte-order mark: jansson refuses it, simdjson may skip it. */
	if (len > AS_JFLAT_MAX_TEXT || (len && (unsigned char)text[0] == 0xEF))
		return -1;
	try {
		if (!tls)
			tls.reset(new scanner);
	} catch (...) {
		return -1; /* out of memory: the jansson way says so */
	}
	std::memcpy(tls->text, text, len);
	std::memset(tls->text + len, 0, SIMDJSON_PADDING);
	if (tls->parser.iterate(tls->text, len, len + SIMDJSON_PADDING)
		    .get(doc))
		return -1;
	return scan_object(doc, out) ? 0 : -1;
}
