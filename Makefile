# wahagate - build, test, demo, benchmark.
#
#   make                 build build/wahagate
#   make test            unit tests (cmocka) and integration tests (pytest)
#   make sanitize        the same tests against an ASan+UBSan build
#                        (also: make test SANITIZE=1)
#   make demo            install what is missing, build, run with the simulator
#   make bench           wrk against /api/waha/status, with upstream calls and RSS
#   make bench-compare   wahagate vs nginx (microcache, static return), side by side
#   make bench-flood     one client pipelining without reading for FLOOD_SECONDS
#                        (60): the worker's RSS, the other clients' p99, the cut
#   make lint / format   cppcheck + clang-tidy / clang-format
#   make fuzz            libFuzzer targets, FUZZ_SECONDS (60) each (tests/fuzz/)
#   make soak            SOAK_MINUTES (10) of mixed load, faults and kills; fails
#                        on RSS growth, failed requests or too many WAHA calls
#   make valgrind        unit and integration tests with wahagate under memcheck
#   make deps            install the Debian packages (scripts/install-deps.sh)
#   make install / deb   install under PREFIX / build the Debian package
#   V=1                  show the full commands
#   BUILD=dir            build somewhere else than build/ (build/sanitize)

VERSION := $(shell cat VERSION)
PYTHON  := /usr/bin/python3

ifeq ($(SANITIZE),1)
BUILD    ?= build/sanitize
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD    ?= build
SANFLAGS :=
endif

PKGS    := libevent libevent_openssl json-c inih libcurl libssl libcrypto libsystemd hiredis
CC      ?= cc
# Test builds (make faults) compile the fault points in (common/fault.h).
ifeq ($(WAHAGATE_FAULTS),1)
FAULTFLAGS := -DWAHAGATE_FAULTS
endif

# CFLAGS, CPPFLAGS and LDFLAGS are the builder's (dpkg-buildflags' hardening
# flags come in through them); what wahagate itself needs is in WG_*.
CFLAGS   ?= -O2 -g
WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wwrite-strings
# (The libraries' include paths come after ours: json-c has a json.h too.)
WG_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARNINGS) $(FAULTFLAGS) -MMD -MP $(SANFLAGS) \
             -DWAHAGATE_VERSION='"$(VERSION)"'
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
WG_LDFLAGS := $(SANFLAGS)
# Debian's libwslay-dev (1.1.1) ships no libwslay.pc: -lwslay.
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -lwslay -lhttp_parser -lpthread -lm

# The tree says which process runs a file (ARCHITECTURE.md): common/ is
# shared, server/<role>/ belongs to one role. A role's files see common/
# and their own folder only; the master, which forks the others, names
# their entry points as worker/worker.h and fetcher/fetcher.h.
INCLUDES_common  := -Icommon
INCLUDES_master  := -Icommon -Iserver/master -Iserver
INCLUDES_worker  := -Icommon -Iserver/worker
INCLUDES_fetcher := -Icommon -Iserver/fetcher
INCLUDES_tests   := -Icommon -Iserver/master -Iserver/worker -Iserver/fetcher
role_of = $(if $(findstring /server/master/,/$1),master,$(if $(findstring /server/worker/,/$1),worker,$(if $(findstring /server/fetcher/,/$1),fetcher,common)))

COMMON_SRC  := $(wildcard common/*.c)
MASTER_SRC  := $(wildcard server/master/*.c)
WORKER_SRC  := $(wildcard server/worker/*.c)
FETCHER_SRC := $(wildcard server/fetcher/*.c)
SERVER_SRC  := $(MASTER_SRC) $(WORKER_SRC) $(FETCHER_SRC)
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/%.o)
WORKER_OBJ  := $(WORKER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/assets.o
FETCHER_OBJ := $(FETCHER_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ  := $(MASTER_SRC:%.c=$(BUILD)/%.o) $(WORKER_OBJ) $(FETCHER_OBJ)
ASSETS      := $(wildcard server/worker/assets/*)
# Role objects the unit tests may link (what has no event loop of its own).
TESTABLE_SERVER_OBJ := $(BUILD)/server/worker/http.o $(BUILD)/server/worker/request.o \
                       $(BUILD)/server/worker/rules.o $(BUILD)/server/fetcher/backoff.o \
                       $(BUILD)/server/fetcher/schedule.o $(BUILD)/server/fetcher/answers.o \
                       $(BUILD)/server/worker/compat_render.o

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all test unit integration roles faults browser-deps sanitize demo bench bench-flood lint format deps clean

all: $(BUILD)/wahagate

$(BUILD)/wahagate: $(COMMON_OBJ) $(SERVER_OBJ)
	@echo "  LINK  $@"
	$(Q)$(CC) $(WG_LDFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The dashboard and the poller, compiled into the binary.
$(BUILD)/assets.c: $(ASSETS) scripts/embed_assets.py
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	$(Q)$(PYTHON) scripts/embed_assets.py $@ $(ASSETS)

$(BUILD)/assets.o: $(BUILD)/assets.c
	@echo "  CC    $<"
	$(Q)$(CC) $(WG_CFLAGS) $(INCLUDES_worker) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(WG_CFLAGS) $(INCLUDES_$(call role_of,$<)) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(COMMON_OBJ) $(TESTABLE_SERVER_OBJ)
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(WG_CFLAGS) -Wno-missing-prototypes $(INCLUDES_tests) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS) \
		$(WG_LDFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS) -lcmocka

test: unit roles integration

# playwright-core for the browser tests (tests/browser), from the lock file.
browser-deps: tests/browser/node_modules/.package-lock.json

tests/browser/node_modules/.package-lock.json: tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "  UNIT  $$t"; $$t; done

# The roles' boundaries, checked on the objects: workers never call WAHA
# (no libcurl, no fetcher code) and the fetcher serves no client.
roles: $(WORKER_OBJ) $(FETCHER_OBJ)
	$(Q)$(PYTHON) scripts/check_roles.py $(WORKER_OBJ) -- $(FETCHER_OBJ)

# The same program with its fault points, for the tests that kill a
# process inside the region's critical section.
faults:
	$(MAKE) BUILD=$(BUILD)/faults WAHAGATE_FAULTS=1 all

integration: $(BUILD)/wahagate faults browser-deps
	GATEWAY_BIN=$(CURDIR)/$(BUILD)/wahagate FAULTS_BIN=$(CURDIR)/$(BUILD)/faults/wahagate \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

sanitize:
	$(MAKE) test SANITIZE=1

demo:
	scripts/install-deps.sh --demo --quiet
	$(MAKE) all
	scripts/demo.sh

bench: $(BUILD)/wahagate
	scripts/bench.sh $(BUILD)/wahagate

# scripts/bench/flood.py: issue 15's flood, measured (FLOOD_* in its comment).
bench-flood: $(BUILD)/wahagate
	$(PYTHON) scripts/bench/flood.py $(BUILD)/wahagate

# Lint: cppcheck, clang-tidy (.clang-tidy: no function over 80 lines among
# its checks), and no source file over 900 lines.
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --std=c11 -D_GNU_SOURCE -DWAHAGATE_VERSION='"lint"' \
		-Icommon -Iserver -Iserver/master -Iserver/worker -Iserver/fetcher common server
	clang-tidy --quiet $(COMMON_SRC) -- $(WG_CFLAGS) $(INCLUDES_common) $(PKG_CFLAGS)
	clang-tidy --quiet $(MASTER_SRC) -- $(WG_CFLAGS) $(INCLUDES_master) $(PKG_CFLAGS)
	clang-tidy --quiet $(WORKER_SRC) -- $(WG_CFLAGS) $(INCLUDES_worker) $(PKG_CFLAGS)
	clang-tidy --quiet $(FETCHER_SRC) -- $(WG_CFLAGS) $(INCLUDES_fetcher) $(PKG_CFLAGS)
	$(Q)long=$$(wc -l common/*.[ch] server/*/*.[ch] tests/unit/*.c tests/fuzz/*.[ch] | \
		awk '$$2 != "total" && $$1 > 900 {print $$2 " (" $$1 " lines)"}'); \
	if [ -n "$$long" ]; then echo "lint: files over 900 lines: $$long"; exit 1; fi

format:
	clang-format -i common/*.[ch] server/*/*.[ch] tests/unit/*.c tests/fuzz/*.[ch]

deps:
	scripts/install-deps.sh

clean:
	rm -rf build

-include $(COMMON_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(UNIT_BIN:=.d)

# ---- install and the Debian package (packaging/)
#
#   make install         build/wahagate, the man pages and a waha.ini
#                        (DESTDIR, PREFIX=/usr/local, SYSCONFDIR=/etc); an
#                        existing $(SYSCONFDIR)/wahagate/waha.ini is kept
#   make deb             build/deb/wahagate_<VERSION>_<arch>.deb (packaging/build-deb.sh)

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc

.PHONY: install deb

install: $(BUILD)/wahagate
	$(PYTHON) packaging/conffile.py waha.ini $(BUILD)/waha.ini.packaged
	install -D -m 0755 $(BUILD)/wahagate $(DESTDIR)$(SBINDIR)/wahagate
	install -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	sed 's/@VERSION@/$(VERSION)/' packaging/man/wahagate.8 > $(DESTDIR)$(MANDIR)/man8/wahagate.8
	sed 's/@VERSION@/$(VERSION)/' packaging/man/waha.ini.5 > $(DESTDIR)$(MANDIR)/man5/waha.ini.5
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/wahagate.8 $(DESTDIR)$(MANDIR)/man5/waha.ini.5
	$(Q)if [ -e $(DESTDIR)$(SYSCONFDIR)/wahagate/waha.ini ]; then \
		echo "  KEEP  $(DESTDIR)$(SYSCONFDIR)/wahagate/waha.ini"; \
	else \
		install -D -m 0644 $(BUILD)/waha.ini.packaged $(DESTDIR)$(SYSCONFDIR)/wahagate/waha.ini; \
	fi

deb:
	sh packaging/build-deb.sh

# ---- bench-compare: wahagate against nginx, side by side (scripts/bench/)
#
#   make bench-compare   installs nginx and wrk if missing; BENCH_QUICK=1 for a
#                        3 s, 1 round check; BENCH_SECONDS, BENCH_ROUNDS,
#                        BENCH_CONNECTIONS, BENCH_HOLD (scripts/bench/compare.py)

.PHONY: bench-compare

bench-compare: $(BUILD)/wahagate
	$(PYTHON) scripts/bench/compare.py $(BUILD)/wahagate
# ---- end of bench-compare

# ---- fuzz: libFuzzer targets (tests/fuzz/), clang with ASan and UBSan
#
#   make fuzz            installs clang's fuzzer runtime if missing
#                        (scripts/install-deps.sh --fuzz), builds
#                        build/fuzz/fuzz_<name> and runs each for FUZZ_SECONDS
#                        (60) on its seeds (tests/fuzz/corpus/<name>, never
#                        written) and what earlier runs found
#                        (build/fuzz/corpus/<name>); fails if one crashes.
#                        FUZZ_TARGETS=config runs only that one.
#   make fuzz-build      only build them
#   Crash inputs go to build/fuzz/crashes/; replay one with
#   build/fuzz/fuzz_<name> FILE.

FUZZ_CC      := clang-14
FUZZ_DIR     := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= request pipeline webhook waha config
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $(WARNINGS) \
                -fsanitize=address,undefined -fno-sanitize-recover=all -MMD -MP \
                -DWAHAGATE_VERSION='"fuzz"' $(INCLUDES_tests) $(PKG_CFLAGS)
FUZZ_COMMON  := $(COMMON_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-build fuzz-run

fuzz:
	scripts/install-deps.sh --quiet --fuzz
	$(MAKE) fuzz-run

fuzz-build: $(FUZZ_BIN)

# The server files each target tests; common/ goes into all of them.
$(FUZZ_DIR)/fuzz_request: $(FUZZ_DIR)/obj/server/worker/conn.o \
                           $(FUZZ_DIR)/obj/server/worker/accept.o \
                           $(FUZZ_DIR)/obj/server/worker/http.o \
                           $(FUZZ_DIR)/obj/server/worker/request.o
$(FUZZ_DIR)/fuzz_pipeline: $(FUZZ_DIR)/obj/server/worker/conn.o \
                            $(FUZZ_DIR)/obj/server/worker/accept.o \
                            $(FUZZ_DIR)/obj/server/worker/http.o \
                            $(FUZZ_DIR)/obj/server/worker/request.o

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON)
	@mkdir -p $(dir $@)
	@echo "  FUZZ  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) \
		$(LDLIBS) -ldl

.PRECIOUS: $(FUZZ_DIR)/obj/%.o
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $< (fuzz)"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

# Each target in turn; the summary line per target is what the run did.
fuzz-run: $(FUZZ_BIN)
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crashes; \
		dict=""; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
		echo "  RUN   fuzz_$$t for $(FUZZ_SECONDS) s (log: $(FUZZ_DIR)/$$t.log)"; \
		if ! $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=25 \
			-print_final_stats=1 $$dict -artifact_prefix=$(FUZZ_DIR)/crashes/$$t- \
			$(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t > $(FUZZ_DIR)/$$t.log 2>&1; then \
			failed="$$failed $$t"; tail -n 40 $(FUZZ_DIR)/$$t.log; \
		fi; \
		runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_DIR)/$$t.log); \
		rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $(FUZZ_DIR)/$$t.log); \
		corp=$$(grep -o 'corp: [0-9]*' $(FUZZ_DIR)/$$t.log | tail -n 1 | cut -d' ' -f2); \
		echo "  DONE  fuzz_$$t: $${runs:-?} executions, $${rate:-?}/s, corpus $${corp:-?} inputs"; \
	done; \
	if [ -n "$$failed" ]; then \
		echo "fuzz: failed:$$failed (inputs in $(FUZZ_DIR)/crashes/)"; exit 1; \
	fi

-include $(wildcard $(FUZZ_DIR)/*.d $(FUZZ_DIR)/obj/*/*.d $(FUZZ_DIR)/obj/*/*/*.d)
# ---- end of fuzz

# ---- soak and valgrind: long-run and memcheck checks (scripts/soak.py, scripts/valgrind.py)
#
#   make soak            the gateway against the simulator for SOAK_MINUTES
#                        (10; SOAK_SECONDS for short checks) under mixed load:
#                        keep-alive polls, SSE, webhooks, WAHA faults, worker
#                        kills. Fails on RSS growth over 5% after warm-up, a
#                        request that should not fail, or WAHA calls beyond
#                        the limits; prints a summary.
#   make valgrind        the unit tests and the integration tests (all but
#                        those listed in scripts/valgrind.py) with wahagate
#                        under memcheck, one log per process in
#                        $(BUILD)/valgrind/logs; fails on any memcheck error,
#                        definite leak or failed test. Suppressions (third
#                        party only): tests/valgrind.supp.

.PHONY: soak valgrind

soak: $(BUILD)/wahagate
	$(PYTHON) scripts/soak.py $(BUILD)/wahagate

valgrind: $(BUILD)/wahagate $(UNIT_BIN) faults
	$(PYTHON) scripts/valgrind.py $(BUILD)
# ---- end of soak and valgrind

# ---- events-probe: the fetcher's WebSocket client on its own (server/fetcher/events.c
#      and events_ws.c)
#
#   make events-probe    build $(BUILD)/events_probe (tests/tools/events_probe.c):
#                        the client against a URL given on its command line, one
#                        line per state change and per message; the integration
#                        tests (tests/integration/test_events_probe.py) run it
#                        against the simulator's /ws. SANITIZE=1 builds it with
#                        ASan+UBSan in build/sanitize like everything else.
.PHONY: events-probe

events-probe: $(BUILD)/events_probe

# make integration builds it too (an extra prerequisite, no recipe).
integration: $(BUILD)/events_probe

$(BUILD)/events_probe: tests/tools/events_probe.c $(BUILD)/server/fetcher/events.o \
                        $(BUILD)/server/fetcher/events_ws.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(WG_CFLAGS) $(INCLUDES_tests) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS) \
		$(WG_LDFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(BUILD)/events_probe.d
# ---- end of events-probe
