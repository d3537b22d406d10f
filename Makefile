# sluice build. `make` builds the daemon and tools; `make test` installs what
# is missing, builds and runs every test; `make demo` starts a demo setup.
# SAN=1 builds into build-san/ with AddressSanitizer and UBSan, TSAN=1 into
# build-tsan/ with ThreadSanitizer (the two cannot share a build).
# `make install` (PREFIX, DESTDIR) installs it; `make deb` builds the Debian
# package into build/deb/.
# FAULT=1 builds into build-fault/ (build-san-fault/ with SAN=1,
# build-tsan-fault/ with TSAN=1) with the test-only fault injection sites
# (UTIL_FAULT, $SLUICE_FAULT); no other build contains them.

CC ?= cc
ifeq ($(SAN),1)
BUILD_SUFFIX = -san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT = -O1 -g
else ifeq ($(TSAN),1)
BUILD_SUFFIX = -tsan
SANFLAGS = -fsanitize=thread -fno-omit-frame-pointer
OPT = -O1 -g
else
BUILD_SUFFIX =
SANFLAGS =
OPT = -O2 -g
# Hardening in the default build. _FORTIFY_SOURCE=3 needs gcc 12 and -O1 or
# more; -U first so that a packager's _FORTIFY_SOURCE=2 is replaced, not
# redefined. Not in the sanitizer builds (ASan checks the same accesses).
HARDEN_CFLAGS = -fstack-protector-strong -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3 -fPIE
HARDEN_LDFLAGS = -pie -Wl,-z,relro,-z,now
endif
ifeq ($(FAULT),1)
BUILD_SUFFIX := $(BUILD_SUFFIX)-fault
CPPFLAGS += -DSLUICE_FAULT_INJECTION
endif
BUILD ?= build$(BUILD_SUFFIX)

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
       -Wvla -Wimplicit-fallthrough -Werror
CPPFLAGS += -Iinclude -I$(BUILD)/gen -D_GNU_SOURCE -DSLUICE_VERSION=\"$(VERSION)\" \
	    $(shell pkg-config --cflags libnl-3.0 libnl-route-3.0 2>/dev/null)
CFLAGS += -std=gnu11 $(OPT) $(WARN) -pthread $(SANFLAGS) $(HARDEN_CFLAGS)
LDFLAGS += -pthread $(SANFLAGS) $(HARDEN_LDFLAGS)
LIBS = -lev $(shell pkg-config --libs libnl-3.0 libnl-route-3.0 openssl libcap zlib libbpf libcares \
	2>/dev/null) \
       -lm
# BPF programs of the cluster module (second chance's tc program, the
# kernel relay's stream verdict): compiled for BPF and embedded as bpftool
# skeletons (build/gen/*.skel.h).
BPF_CLANG ?= clang
BPFTOOL ?= $(or $(shell command -v bpftool 2>/dev/null),/usr/sbin/bpftool)
BPF_CFLAGS = -target bpf -O2 -g -Wall -Werror -I/usr/include/$(shell $(CC) -print-multiarch)
# The release; debian/changelog carries the same number.
VERSION := 0.1.0
# A copy without git (make deb) has the commit written in .git-commit.
GIT_COMMIT := $(or $(shell cat .git-commit 2>/dev/null),$(shell git rev-parse --short=12 HEAD \
	2>/dev/null)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty),unknown)
# Optional parts, listed by `sluice --version`: 1 when compiled in.
HAVE_KRELAY ?= $(if $(wildcard src/cluster/krelay.c),1,0)
HAVE_BPF ?= $(if $(wildcard src/cluster/cluster.c),1,0)
HAVE_CARES ?= $(if $(wildcard src/resolve/*.c),1,0)

# Where `make install` puts things: PREFIX for the program, its pages and
# unit; SYSCONFDIR is where the unit expects sluice/sluice.conf.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/sluice
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
MANPAGES = man/sluice.8 man/sluicectl.8 man/sluice.conf.5 man/rolling-deploy.1

# Link order: users before what they use.
MODULES = core ctl health vrrp vip resolve proxy guard tls cluster pool balance conf log util
define mod_srcs
$(wildcard src/$(1)/*.c)
endef
ALL_SRCS = $(foreach m,$(MODULES),$(call mod_srcs,$(m)))
MOD_LIBS = $(foreach m,$(MODULES),$(if $(call mod_srcs,$(m)),$(BUILD)/lib/lib$(m).a))

UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TOOL_SRCS = $(wildcard tools/*.c)
TOOL_BINS = $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))

.PHONY: all deps test unit integration netns conftest fuzz demo demo-stop bench san-test \
	tsan-test clean check-layout format-check install uninstall man-check pkg-test deb FORCE \
	perf-maglev perf-guard

all: $(BUILD)/sluice $(TOOL_BINS)

.SECONDEXPANSION:
.SECONDARY:

deps:
	@sh tools/install-deps

# What --version says about the build; rewritten only when it changes, so
# that only version.o is rebuilt. The build directory stays out of it (the
# prefix maps name it), so that a package build is reproducible.
INFO_CFLAGS = $(subst ",,$(strip $(filter-out -I% -DSLUICE_VERSION=%,$(CPPFLAGS)) \
	$(filter-out -ffile-prefix-map=% -fdebug-prefix-map=%,$(CFLAGS))))
$(BUILD)/gen/build-info.h: FORCE
	@mkdir -p $(dir $@)
	@{ echo '#define SLUICE_GIT_COMMIT "$(GIT_COMMIT)"'; \
	   echo '#define SLUICE_BUILD_CFLAGS "$(INFO_CFLAGS)"'; \
	   echo '#define SLUICE_BUILD_LDFLAGS "$(subst ",,$(strip $(LDFLAGS)))"'; \
	   echo '#define SLUICE_HAVE_KRELAY $(HAVE_KRELAY)'; \
	   echo '#define SLUICE_HAVE_BPF $(HAVE_BPF)'; \
	   echo '#define SLUICE_HAVE_CARES $(HAVE_CARES)'; } >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/obj/core/version.o: $(BUILD)/gen/build-info.h

$(BUILD)/gen/cluster.bpf.o: src/cluster/bpf/cluster.bpf.c src/cluster/bpf/cluster_abi.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@
$(BUILD)/gen/cluster.skel.h: $(BUILD)/gen/cluster.bpf.o
	$(BPFTOOL) gen skeleton $< name cluster_bpf >$@.tmp && mv $@.tmp $@
$(BUILD)/obj/cluster/cluster.o: $(BUILD)/gen/cluster.skel.h
# The kernel relay's stream-verdict program (src/cluster/bpf/krelay.bpf.c).
$(BUILD)/gen/krelay.bpf.o: src/cluster/bpf/krelay.bpf.c src/cluster/bpf/krelay_abi.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@
$(BUILD)/gen/krelay.skel.h: $(BUILD)/gen/krelay.bpf.o
	$(BPFTOOL) gen skeleton $< name krelay_bpf >$@.tmp && mv $@.tmp $@
$(BUILD)/obj/cluster/krelay.o: $(BUILD)/gen/krelay.skel.h

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

objs_of = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard src/$(1)/*.c))
$(BUILD)/lib/lib%.a: $$(call objs_of,$$*)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/sluice: $(MOD_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(MOD_LIBS) $(LIBS)

# Tools link util and log only (and libs), never the daemon's modules.
$(BUILD)/%: tools/%.c $(BUILD)/lib/libutil.a $(BUILD)/lib/liblog.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a -lev $(LDFLAGS)

# bench-peek times the pure ClientHello parser: it links tls too.
$(BUILD)/bench-peek: tools/bench-peek.c $(BUILD)/lib/libtls.a $(BUILD)/lib/libutil.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/lib/libtls.a $(BUILD)/lib/libutil.a $(LDFLAGS)

# A unit test test_<mod>[_what].c links only its module, log and util;
# UNIT_LIBS_<test> lists the modules instead (users before what they use)
# where a module is tested together with the pure one it is built on.
unit_mod = $(firstword $(subst _, ,$(patsubst test_%,%,$(1))))
unit_libs = $(foreach m,$(or $(UNIT_LIBS_$(1)),$(call unit_mod,$(1))),$(BUILD)/lib/lib$(m).a)
UNIT_LIBS_test_pool = pool balance
$(BUILD)/tests/%: tests/unit/%.c $$(call unit_libs,$$*) $(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(call unit_libs,$*) \
		$(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a -lcmocka $(LIBS) $(LDFLAGS)

# test_conf_oom makes the Nth allocation of conf fail: conf's calls go
# through the test's wrappers (libc's own calls are not affected)
$(BUILD)/tests/test_conf_oom: LDFLAGS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# Measurements (not tests): tests/perf/perf_<mod>_<what>.c links like a
# unit test. `make perf-maglev PERF_ARGS="65537 11"`: slots, repeats.
$(BUILD)/perf/perf_pool_maglev: tests/perf/perf_pool_maglev.c $(call unit_libs,test_pool) \
		$(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(call unit_libs,test_pool) \
		$(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a $(LIBS) $(LDFLAGS)

perf-maglev: $(BUILD)/perf/perf_pool_maglev
	$< $(PERF_ARGS)

# `make perf-guard PERF_ARGS="1000000 5"`: prefixes, repeats (-6 first: IPv6).
$(BUILD)/perf/perf_guard_lpm: tests/perf/perf_guard_lpm.c $(call unit_libs,test_guard) \
		$(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(call unit_libs,test_guard) \
		$(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a $(LIBS) $(LDFLAGS)

perf-guard: $(BUILD)/perf/perf_guard_lpm
	$< $(PERF_ARGS)

conftest: $(BUILD)/sluice
	@sh tests/conf/run.sh $(BUILD)/sluice

integration: all
	cd tests/integration && SLUICE_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) .

netns: all
	@if [ -n "$$(ls tests/netns/test_*.py 2>/dev/null)" ]; then \
	  cd tests/netns && SLUICE_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) .; fi

FUZZ_SECONDS ?= 20
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS = $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRCS))
FUZZ_CFLAGS = -std=gnu11 -g -O1 -Iinclude -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	$(shell pkg-config --cflags libnl-3.0 2>/dev/null)
# fuzz_<mod>_<what>.c links the sources of its (pure) module and util/log;
# FUZZ_SRC_<target> names the files instead where the module is not pure.
FUZZ_SRC_fuzz_proxy_proto = src/proxy/proxyproto.c
FUZZ_SRC_fuzz_ctl_http = src/ctl/ctl_http.c
FUZZ_SRC_fuzz_ctl_cmd = src/ctl/ctl_cmd.c src/ctl/ctl_server.c src/ctl/ctl_http.c src/ctl/ctl_metrics.c src/ctl/ctl_state.c src/pool/*.c src/balance/*.c
FUZZ_SRC_fuzz_vrrp_pkt = src/vrrp/vrrp_pkt.c src/vrrp/vrrp_fsm.c
FUZZ_SRC_fuzz_health_http = src/health/health_parse.c
FUZZ_SRC_fuzz_health_expect = src/health/health_parse.c
FUZZ_SRC_fuzz_health_agent = src/health/health_parse.c
FUZZ_SRC_fuzz_resolve_dns = src/resolve/resolve_dns.c
fuzz_srcs = $(or $(FUZZ_SRC_$(1)),$(wildcard src/$(call unit_mod,$(patsubst fuzz_%,test_%,$(1)))/*.c))
build-fuzz/%: tests/fuzz/%.c $(ALL_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(call fuzz_srcs,$*) src/util/*.c src/log/*.c -pthread -lm -lev -lz

fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  ml=$$(case $$n in fuzz_tls_hello) echo 17000;; *) echo 4096;; esac); \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=$$ml -print_final_stats=0 \
	    build-fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} 2>&1 | tail -n 3; done

test: deps
	$(MAKE) all
	$(MAKE) check-layout
	$(MAKE) format-check
	$(MAKE) unit
	$(MAKE) conftest
	$(MAKE) integration
	$(MAKE) netns
	$(MAKE) fuzz
	$(MAKE) man-check
	$(MAKE) pkg-test

san-test: deps
	$(MAKE) SAN=1 all
	$(MAKE) SAN=1 unit
	$(MAKE) SAN=1 integration

# Races between the workers and the control thread. TSAN_OPTIONS: a report
# fails a unit test (exit code) and an integration test (its daemon log);
# tools/tsan.supp covers uninstrumented third-party code only.
TSAN_ENV = TSAN_OPTIONS="suppressions=$(abspath tools/tsan.supp) second_deadlock_stack=1 $(TSAN_OPTIONS)"
tsan-test: deps
	$(MAKE) TSAN=1 all
	$(TSAN_ENV) $(MAKE) TSAN=1 unit
	$(TSAN_ENV) $(MAKE) TSAN=1 integration

check-layout:
	@sh tools/check-layout

# The house style (.clang-format) on every C file; reports, changes nothing.
FORMAT_SRCS = $(sort $(wildcard src/*/*.c src/*/*.h include/sluice/*.h tests/unit/*.c tools/*.c))
format-check:
	clang-format --dry-run -Werror $(FORMAT_SRCS)

# ---- install, manual pages, Debian package

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(BUILD)/sluice $(DESTDIR)$(SBINDIR)/sluice
	install -m 0755 $(BUILD)/sluicectl $(DESTDIR)$(BINDIR)/sluicectl
	install -m 0755 tools/rolling-deploy $(DESTDIR)$(BINDIR)/rolling-deploy
	install -m 0644 man/sluice.8 man/sluicectl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/sluice.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/rolling-deploy.1 $(DESTDIR)$(MANDIR)/man1/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		conf/sluice.service.in >$(DESTDIR)$(UNITDIR)/sluice.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/sluice.service
	install -m 0644 conf/sluice.conf conf/demo.conf conf/announce-node.conf \
		conf/bird-node.conf docs/frr-node.conf $(DESTDIR)$(DOCDIR)/examples/

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sluice $(DESTDIR)$(BINDIR)/sluicectl \
		$(DESTDIR)$(BINDIR)/rolling-deploy $(DESTDIR)$(MANDIR)/man8/sluice.8 \
		$(DESTDIR)$(MANDIR)/man8/sluicectl.8 $(DESTDIR)$(MANDIR)/man5/sluice.conf.5 \
		$(DESTDIR)$(MANDIR)/man1/rolling-deploy.1 $(DESTDIR)$(UNITDIR)/sluice.service \
		$(DESTDIR)$(DOCDIR)/examples/sluice.conf $(DESTDIR)$(DOCDIR)/examples/demo.conf \
		$(DESTDIR)$(DOCDIR)/examples/announce-node.conf \
		$(DESTDIR)$(DOCDIR)/examples/bird-node.conf $(DESTDIR)$(DOCDIR)/examples/frr-node.conf
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null

# The pages render without a warning, and name every keyword and command of
# the tables (tests/pkg/test_man.py).
man-check: $(BUILD)/sluice
	mandoc -T lint -W warning $(MANPAGES)
	cd tests/pkg && SLUICE_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q \
		-p no:cacheprovider test_man.py

# --version, make install into a scratch root, the Debian package (built,
# lintian, installed, removed, purged: as root): tests/pkg.
pkg-test: all
	cd tests/pkg && SLUICE_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q \
		-p no:cacheprovider $(PYTEST_ARGS) test_version.py test_install.py test_deb.py

# dpkg-buildpackage writes its results next to the source tree, so the
# package is built from a copy in build/deb/ (the files git knows, and the
# commit they are at); build/deb/*.deb is the result.
DEB_SRC = build/deb/sluice-$(VERSION)
deb:
	rm -rf build/deb && mkdir -p $(DEB_SRC)
	git ls-files -co --exclude-standard | grep -v '^build' | \
		tar --ignore-failed-read -cf - -T - | tar -xf - -C $(DEB_SRC)
	echo "$(GIT_COMMIT)" >$(DEB_SRC)/.git-commit
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	@ls build/deb/*.deb

demo: deps all
	@sh tools/demo start $(BUILD)

demo-stop:
	@sh tools/demo stop

bench: all
	/usr/bin/python3 tools/bench $(BENCH_ARGS)

clean:
	rm -rf build build-san build-tsan build-fuzz build-fault build-san-fault build-tsan-fault

FORCE:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
