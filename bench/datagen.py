"""Deterministic benchmark data for bench/run.py (Python standard library only).

Every file is a pure function of (seed, size), so every tool in a run reads the
same bytes and a rerun regenerates nothing: files are cached under bench/data/
and rebuilt only when their name (which carries the seed and sizes) is new.
"""
import csv
import json
import os
import random

ADDON_FIELDS = ["id", "name", "slug", "summary", "downloads", "category",
                "score", "updated_at"]
SCOPED_FIELDS = ["id", "user_id", "addon_id", "position", "name", "note",
                 "subscribed_at"]

WORDS = ("quest bag bank auction loot map raid dungeon boss timer frame bar "
         "unit party arena guild chat mail tooltip action cast aura buff "
         "debuff threat damage heal meter combat log minimap icon skin theme "
         "font sound alert warning helper tracker planner manager assistant "
         "inventory profession recipe vendor price scanner broker sort filter "
         "search plus lite classic retail mythic pvp pet mount toy title "
         "reputation achievement talent rotation macro bind key mouse cursor "
         "nameplate portrait panel window layout anchor grid border shadow "
         "glow spark pulse flash fade smooth quick simple advanced ultimate "
         "tiny mini mega super power core kit suite tools addon module").split()
CATEGORIES = ["Achievements", "Action Bars", "Artwork", "Auction & Economy",
              "Audio & Video", "Bags & Inventory", "Boss Encounters",
              "Buffs & Debuffs", "Chat & Communication", "Class", "Combat",
              "Companions", "Data Export", "Development Tools", "Guild",
              "Libraries", "Mail", "Map & Minimap", "Minigames", "Miscellaneous",
              "Plugins", "Professions", "PvP", "Quests & Leveling", "Roleplay",
              "Tooltip", "Twitch Integration", "Unit Frames"]
BASE_TIME = 1_704_067_200  # 2024-01-01T00:00:00Z


def _iso(t):
    # time.gmtime is slow enough to matter over a million rows; do it by hand.
    days, rem = divmod(t, 86400)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    # civil-from-days (Howard Hinnant), days since 1970-01-01
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y += m <= 2
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, hh, mm, ss)


def _addon(rng, rid):
    words = rng.sample(WORDS, rng.randint(2, 3))
    name = " ".join(w.capitalize() for w in words)
    summary = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 7)))
    return {
        "id": rid,
        "name": name,
        "slug": "-".join(words) + "-%d" % rid,
        "summary": summary[0].upper() + summary[1:] + ".",
        "downloads": int(10 ** rng.uniform(1, 8)),
        "category": rng.choice(CATEGORIES),
        "score": round(rng.uniform(0, 1000), 4),
        "updated_at": _iso(BASE_TIME + rng.randrange(60 * 86400 * 6)),
    }


def addons(n, seed):
    """The first n records of the catalog for this seed: ids increase with
    small gaps (a dump in key order), so a shorter file is a prefix."""
    rng = random.Random(seed)
    rid = 1000
    for _ in range(n):
        rid += rng.randint(1, 3)
        yield _addon(rng, rid)


def _dump(rec):
    return json.dumps(rec, separators=(",", ":"))


def _write(path, fields, recs):
    """Write recs as JSON lines at path and as CSV (with a header) next to it,
    atomically (a killed run leaves no half file behind)."""
    csv_path = path[:-len(".jsonl")] + ".csv"
    n = 0
    with open(path + ".tmp", "w") as fj, open(csv_path + ".tmp", "w",
                                               newline="") as fc:
        w = csv.writer(fc)
        w.writerow(fields)
        for rec in recs:
            fj.write(_dump(rec))
            fj.write("\n")
            w.writerow([rec[f] for f in fields])
            n += 1
    os.replace(csv_path + ".tmp", csv_path)
    os.replace(path + ".tmp", path)
    return n


def _cached(path):
    csv_path = path[:-len(".jsonl")] + ".csv"
    return os.path.exists(path) and os.path.exists(csv_path)


def base_file(data_dir, n, seed):
    """W1/W2 input: n addon records (JSON lines, plus CSV)."""
    path = os.path.join(data_dir, "addons-s%d-n%d.jsonl" % (seed, n))
    if not _cached(path):
        _write(path, ADDON_FIELDS, addons(n, seed))
    return path


def changed_file(data_dir, n, seed):
    """W3 input: the base file with 1% of records changed, 0.5% deleted and
    0.5% new (new ids above the largest).  Returns (path, expected counts)."""
    path = os.path.join(data_dir, "addons-s%d-n%d-w3.jsonl" % (seed, n))
    rng = random.Random(seed * 7919 + 3)
    idx = list(range(n))
    rng.shuffle(idx)
    nchg, ndel, nnew = n // 100, n // 200, n // 200
    changed = set(idx[:nchg])
    deleted = set(idx[nchg:nchg + ndel])
    counts = {"updated": nchg, "deleted": ndel, "inserted": nnew,
              "unchanged": n - nchg - ndel}
    if _cached(path):
        return path, counts

    def recs():
        last = 0
        for i, rec in enumerate(addons(n, seed)):
            last = rec["id"]
            if i in deleted:
                continue
            if i in changed:
                rec["downloads"] += 1 + rng.randrange(5000)
                rec["score"] = round(rng.uniform(0, 1000), 4)
                rec["updated_at"] = _iso(BASE_TIME + 400 * 86400 +
                                         rng.randrange(86400))
            yield rec
        nrng = random.Random(seed * 7919 + 5)
        for _ in range(nnew):
            last += nrng.randint(1, 3)
            yield _addon(nrng, last)

    _write(path, ADDON_FIELDS, recs())
    return path, counts


def _sub(rng, rid, uid):
    words = rng.sample(WORDS, 2)
    return {
        "id": rid,
        "user_id": uid,
        "addon_id": 1000 + rng.randrange(3_000_000),
        "position": rng.randrange(100),
        "name": " ".join(w.capitalize() for w in words),
        "note": " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 8))),
        "subscribed_at": _iso(BASE_TIME + rng.randrange(300 * 86400)),
    }


def scoped_files(data_dir, scopes, per_scope, replace, seed):
    """W4 inputs: `scopes` users with `per_scope` subscriptions each (ids
    unique across users), and a second file holding the complete new sets of
    `replace` of those users: per user a quarter of the rows changed, a
    quarter dropped, and as many new ones as dropped.  Returns
    (initial path, replacement path, expected counts of the replacement)."""
    tag = "s%d-u%d-r%d-p%d" % (seed, scopes, replace, per_scope)
    init = os.path.join(data_dir, "subs-%s.jsonl" % tag)
    repl = os.path.join(data_dir, "subs-%s-replace.jsonl" % tag)
    q = per_scope // 4
    counts = {"updated": replace * q, "deleted": replace * q,
              "inserted": replace * q,
              "unchanged": replace * (per_scope - 2 * q)}
    if _cached(init) and _cached(repl):
        return init, repl, counts
    rng = random.Random(seed * 104729 + 11)
    users = {}
    for u in range(scopes):
        uid = 500_000 + u * 7
        users[uid] = [_sub(rng, u * per_scope + k + 1, uid)
                      for k in range(per_scope)]
    _write(init, SCOPED_FIELDS,
           (r for uid in users for r in users[uid]))
    pick = random.Random(seed * 104729 + 13)
    chosen = sorted(pick.sample(sorted(users), replace))
    next_id = scopes * per_scope + 1

    def repl_recs():
        nonlocal next_id
        for uid in chosen:
            rows = users[uid]
            for k, r in enumerate(rows):
                if k < q:                      # dropped
                    continue
                if k < 2 * q:                  # changed
                    r = dict(r, position=r["position"] + 100)
                yield r
            for _ in range(q):                 # new
                yield _sub(pick, next_id, uid)
                next_id += 1

    _write(repl, SCOPED_FIELDS, repl_recs())
    return init, repl, counts


def iddata_csv(src):
    """The JSON lines of src as CSV rows (id, the line): the shape of the
    table `atomsync load` creates without `columns`."""
    path = src[:-len(".jsonl")] + "-iddata.csv"
    if os.path.exists(path):
        return path
    with open(src) as f, open(path + ".tmp", "w", newline="") as out:
        w = csv.writer(out)
        for line in f:
            line = line.rstrip("\n")
            w.writerow([json.loads(line)["id"], line])
    os.replace(path + ".tmp", path)
    return path


def prefix_file(src, n, data_dir):
    """The first n lines of a JSON-lines file (the per-row loop's input)."""
    base = os.path.basename(src)[:-len(".jsonl")]
    path = os.path.join(data_dir, "%s-head%d.jsonl" % (base, n))
    if os.path.exists(path):
        return path
    with open(src) as f, open(path + ".tmp", "w") as out:
        for i, line in enumerate(f):
            if i >= n:
                break
            out.write(line)
    os.replace(path + ".tmp", path)
    return path
