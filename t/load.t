#!/usr/bin/perl

# Both modules load alone and together, export only their module symbols,
# and an nginx with both runs with two workers.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;

my $t = Test::Nginx->new()->has()->plan(9);

my $globals = "error_log %%TESTDIR%%/t.log; pid %%TESTDIR%%/t.pid;\n"
	. "events {}\n";

for my $set ([ 'rendezvous' ], [ 'relay' ], [ 'rendezvous', 'relay' ],
	[ 'relay', 'rendezvous' ])
{
	my $load = "load_module $Test::Nginx::STREAM_MODULE;\n"
		. join('', map { "load_module $Test::Nginx::MODULES/"
			. "ngx_stream_rustdesk_${_}_module.so;\n" } @$set);

	$t->write_file_expand('load.conf', $load . $globals . <<'EOF');
stream {
    rustdesk_key_dir %%TESTDIR%%/keys;
    rustdesk_key _;
}
EOF

	my ($rc, $out) = $t->test_config('load.conf');
	is($rc, 0, "nginx -t with @$set") or diag($out);
}

# a stream directive of ours is refused outside stream {}

$t->write_file_expand('bad.conf', "load_module $Test::Nginx::STREAM_MODULE;\n"
	. "load_module $Test::Nginx::MODULES/"
	. "ngx_stream_rustdesk_relay_module.so;\n" . $globals
	. "rustdesk_key _;\nstream {}\n");

my ($rc, $out) = $t->test_config('bad.conf');
like($out, qr/"rustdesk_key" directive is not allowed here/,
	'stream directive outside stream {}');

# only what load_module looks up is exported, so the common/ code in one
# module never binds to the other's copy

for my $m (qw/ rendezvous relay /) {
	my $so = "$Test::Nginx::MODULES/ngx_stream_rustdesk_${m}_module.so";
	my @syms = sort map { (split)[2] } grep { /^\S+ [A-TV-Z] / }
		split /\n/, `nm -D --defined-only $so`;

	is("@syms", "ngx_module_names ngx_module_order ngx_modules "
		. "ngx_stream_rustdesk_${m}_module", "$m exports");
}

# running with both modules and two workers

$t->write_file_expand('nginx.conf',
	stream_conf([ 'rustdesk_key_dir %%TESTDIR%%/keys;' ],
	srv_block([ '127.0.0.1:%%PORT_0%%' ], 'return "ok";')));

$t->run();

my @workers = $t->worker_pids();
is(scalar @workers, 2, 'two workers');

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . port(0));
my $got = '';
$s->sysread($got, 10) if $s;
is($got, 'ok', 'serving');
