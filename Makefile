SHELL := /bin/bash

# ngx_rustdesk: build the two nginx stream modules against Debian's nginx.
#
#   make            build build/ngx_stream_rustdesk_{rendezvous,relay}_module.so
#   make install    copy them to Debian's nginx module directory
#   make run        install what is missing, build, run conf.example/nginx.conf
#   make test       install what the tests need, build, run every test
#   make unit       C unit tests of common/ and of the peer table
#   make test-nginx the suite against nginx built from a Debian release's
#                   source (NGINX_DIST=trixie: 1.26), modules loaded
#                   dynamically
#   make deb        the Debian package (build/*.deb)
#   make test-deb   install it into the system nginx and serve (root)
#   make bench      benchmarks (bench/README.md)
#   make bench-exposed  attacks on a private server (bench/exposed)

NGX_SRC      ?= /usr/share/nginx/src
NGX_MODULES  ?= /usr/lib/nginx/modules
BUILD        := build
NGX_BUILD    := $(BUILD)/nginx
MODULES      := ngx_stream_rustdesk_rendezvous_module \
                ngx_stream_rustdesk_relay_module
SO           := $(MODULES:%=$(BUILD)/%.so)

SOURCES      := config config.make $(wildcard common/*.[ch] common/*.proto \
                common/*.map ngx_rustdesk_*/*.[ch] ngx_rustdesk_*/config)

.PHONY: all install run test unit unit-build deps clean bench bench-exposed \
        test-nginx test-nginx-newer deb test-deb

all: $(SO)

# Debian ships nginx's configure tree but not the stream sources, so only
# our two module targets can be built from it (not "make modules").
$(NGX_BUILD)/Makefile: config config.make $(wildcard ngx_rustdesk_*/config)
	@test -f $(NGX_SRC)/configure || { \
	    echo "$(NGX_SRC) is missing: install nginx-dev (or run 'make deps')"; \
	    exit 1; }
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-stream=dynamic --with-stream_ssl_module \
	    --with-stream_realip_module \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

$(BUILD)/%.so: $(NGX_BUILD)/Makefile $(SOURCES)
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile objs/$*.so
	# a new file, not an overwrite: a running nginx may have the old one mapped
	cp $(NGX_BUILD)/objs/$*.so $@.tmp && mv -f $@.tmp $@

# Both modules link the same objects of common/: with make -j, two builds
# of the tree at once would write them at once, and one module could link
# a half-written object.  One after the other (each in parallel inside).
$(BUILD)/ngx_stream_rustdesk_relay_module.so: | \
        $(BUILD)/ngx_stream_rustdesk_rendezvous_module.so

install: $(SO)
	install -d $(DESTDIR)$(NGX_MODULES)
	for so in $(SO); do \
	    install -m 0644 $$so $(DESTDIR)$(NGX_MODULES)/.$$(basename $$so).tmp && \
	    mv -f $(DESTDIR)$(NGX_MODULES)/.$$(basename $$so).tmp \
	          $(DESTDIR)$(NGX_MODULES)/$$(basename $$so) || exit 1; \
	done

deps:
	scripts/install-deps

run:
	scripts/install-deps
	$(MAKE) all
	scripts/run

test:
	scripts/install-deps --test
	$(MAKE) all
	$(MAKE) unit
	prove -r t/

# The whole suite against another nginx: built from the pristine source of
# a Debian release (scripts/build-nginx), with the modules built in its
# tree and loaded dynamically.  The build is kept in build/nginx-<version>.
NGINX_DIST   ?= trixie

test-nginx:
	scripts/install-deps --test
	tree=$$(scripts/build-nginx $(NGINX_DIST)) && \
	TEST_NGINX_BINARY=$$tree/objs/nginx \
	TEST_NGINX_MODULES=$$tree/objs \
	TEST_NGINX_STREAM_MODULE=$$tree/objs/ngx_stream_module.so \
	prove -r t/

# The same against Debian unstable's nginx, when the archive serves its
# source (it lists it before every mirror has it): said, not failed, if not.
test-nginx-newer:
	@scripts/install-deps --test
	@rc=0; scripts/build-nginx unstable > /dev/null || rc=$$?; \
	if [ $$rc = 2 ]; then \
	    echo "test-nginx-newer: skipped, Debian unstable's nginx source" \
	         "is not served"; \
	elif [ $$rc != 0 ]; then \
	    exit $$rc; \
	else \
	    $(MAKE) test-nginx NGINX_DIST=unstable; \
	fi

# C unit tests of common/ (no nginx needed)
UNIT_CFLAGS  := -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter \
                -Icommon -I$(BUILD)/proto -fsanitize=address,undefined \
                -fno-omit-frame-pointer
UNIT_SRCS    := t/unit/test_common.c common/ngx_rustdesk_frame.c \
                common/ngx_rustdesk_heartbeat.c \
                common/ngx_rustdesk_addr.c common/ngx_rustdesk_keys.c \
                common/ngx_rustdesk_ws.c $(BUILD)/proto/rendezvous.pb-c.c

$(BUILD)/proto/rendezvous.pb-c.c: common/rendezvous.proto
	mkdir -p $(BUILD)/proto
	protoc-c --c_out=$(BUILD)/proto -Icommon common/rendezvous.proto

$(BUILD)/unit_tests: $(UNIT_SRCS) $(wildcard common/*.h t/unit/*.h)
	$(CC) $(UNIT_CFLAGS) -o $@ $(UNIT_SRCS) -lsodium -lprotobuf-c

# C unit tests of the rendezvous peer table: nginx's headers from the tree
# that the module build configures, a slab allocator of the test's own
TABLE_CFLAGS := $(UNIT_CFLAGS) -I$(NGX_BUILD)/objs -I$(NGX_BUILD)/src/core \
                -I$(NGX_BUILD)/src/event -I$(NGX_BUILD)/src/os/unix \
                -Ingx_rustdesk_rendezvous
TABLE_SRCS   := t/unit/test_peer_table.c \
                ngx_rustdesk_rendezvous/ngx_stream_rustdesk_rendezvous_table.c

$(BUILD)/unit_table: $(TABLE_SRCS) $(BUILD)/proto/rendezvous.pb-c.c \
                     $(wildcard ngx_rustdesk_rendezvous/*.h) \
                     | $(NGX_BUILD)/objs/ngx_auto_config.h
	$(CC) $(TABLE_CFLAGS) -o $@ $(TABLE_SRCS) -lsodium

# configured once, whatever changes later
$(NGX_BUILD)/objs/ngx_auto_config.h:
	$(MAKE) $(NGX_BUILD)/Makefile

unit-build: $(BUILD)/unit_tests $(BUILD)/unit_table

unit: $(BUILD)/unit_tests $(BUILD)/unit_table
	$(BUILD)/unit_tests
	$(BUILD)/unit_table

# The Debian package, built with debhelper against the system's nginx-dev
# (packaging/debian): build/libnginx-mod-stream-rustdesk_<version>_<arch>.deb
deb:
	scripts/install-deps --deb
	scripts/build-deb

# Installs that package into the system nginx, serves a session through it
# and removes it again (t/system/deb.t): root, and the system's nginx.
test-deb:
	scripts/install-deps --test
	deb=$$(scripts/build-deb | tail -1) && \
	TEST_SYSTEM_PACKAGE=$$deb prove t/system/deb.t

bench: all
	bench/run

bench-exposed: all
	bench/exposed

clean:
	rm -rf $(BUILD)
