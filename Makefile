# sluice build. `make` builds the daemon and tools; `make test` installs what
# is missing, builds and runs every test; `make demo` starts a demo setup.
# SAN=1 builds into build-san/ with AddressSanitizer and UBSan.

CC ?= cc
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT = -O1 -g
else
BUILD ?= build
SANFLAGS =
OPT = -O2 -g
endif

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
       -Wvla -Wimplicit-fallthrough -Werror
CPPFLAGS += -Iinclude -D_GNU_SOURCE -DSLUICE_VERSION=\"$(VERSION)\" \
	    $(shell pkg-config --cflags libnl-3.0 libnl-route-3.0 2>/dev/null)
CFLAGS += -std=gnu11 $(OPT) $(WARN) -pthread $(SANFLAGS)
LDFLAGS += -pthread $(SANFLAGS)
LIBS = -lev $(shell pkg-config --libs libnl-3.0 libnl-route-3.0 openssl libcap 2>/dev/null) -lm
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1)

# Link order: users before what they use.
MODULES = core ctl health vrrp vip proxy tls pool balance conf log util
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
	clean check-layout format-check

all: $(BUILD)/sluice $(TOOL_BINS)

.SECONDEXPANSION:
.SECONDARY:

deps:
	@sh tools/install-deps

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

# A unit test test_<mod>[_what].c links only its module, log and util.
unit_mod = $(firstword $(subst _, ,$(patsubst test_%,%,$(1))))
$(BUILD)/tests/%: tests/unit/%.c $$(BUILD)/lib/lib$$(call unit_mod,$$*).a \
		$(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/lib/lib$(call unit_mod,$*).a \
		$(BUILD)/lib/liblog.a $(BUILD)/lib/libutil.a -lcmocka $(LIBS) $(LDFLAGS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

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
FUZZ_SRC_fuzz_ctl_cmd = src/ctl/ctl_cmd.c src/ctl/ctl_server.c src/ctl/ctl_metrics.c src/ctl/ctl_state.c src/pool/*.c src/balance/*.c
FUZZ_SRC_fuzz_vrrp_pkt = src/vrrp/vrrp_pkt.c src/vrrp/vrrp_fsm.c
FUZZ_SRC_fuzz_health_http = src/health/health_parse.c
FUZZ_SRC_fuzz_health_expect = src/health/health_parse.c
FUZZ_SRC_fuzz_health_agent = src/health/health_parse.c
fuzz_srcs = $(or $(FUZZ_SRC_$(1)),$(wildcard src/$(call unit_mod,$(patsubst fuzz_%,test_%,$(1)))/*.c))
build-fuzz/%: tests/fuzz/%.c $(ALL_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(call fuzz_srcs,$*) src/util/*.c src/log/*.c -pthread -lm -lev

fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  ml=$$(case $$n in fuzz_tls_hello) echo 17000;; *) echo 4096;; esac); \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=$$ml -print_final_stats=0 \
	    build-fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} 2>&1 | tail -n 3; done

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) conftest
	$(MAKE) integration
	$(MAKE) netns
	$(MAKE) fuzz
	$(MAKE) check-layout

san-test: deps
	$(MAKE) SAN=1 all
	$(MAKE) SAN=1 unit
	$(MAKE) SAN=1 integration

check-layout:
	@sh tools/check-layout

demo: deps all
	@sh tools/demo start $(BUILD)

demo-stop:
	@sh tools/demo stop

bench: all
	/usr/bin/python3 tools/bench $(BENCH_ARGS)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
