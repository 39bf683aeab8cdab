#!/usr/bin/perl

# The ready configurations of conf.example/, as a user takes them: each
# passes nginx -t, and nginx.conf with its rustdesk.conf serves a relayed
# session with the generated key pair, on the rendezvous and on the relay,
# and refuses a relay client with a wrong key (hbbr -k _).
#
# Only what a test needs is rewritten: the listen ports (free ones, on
# 127.0.0.1), /var/lib/rustdesk and /var/log/nginx (the test directory),
# the module paths, pid and error_log (the harness's), and the TLS
# certificate paths.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Session;
use RustDesk::RelayTest ();
use RustDesk::Metrics ();

my $t = Test::Nginx->new()->has()->plan(12);
my $d = $t->testdir();

# the example's ports, each mapped to a free one
my %PORT = map { $_ => port($_) } 21115 .. 21121, 443, 9117;

sub example {
	my ($name) = @_;

	open(my $fh, '<', "conf.example/$name") or die "$name: $!\n";
	local $/;
	my $conf = <$fh>;

	$conf =~ s/^load_module .*\n//mg;
	$conf =~ s/^worker_processes .*\n//mg;
	$conf =~ s/^events \{.*?^\}\n//msg;
	$conf =~ s{/var/lib/rustdesk}{$d/data}g;
	$conf =~ s{/var/log/nginx}{$d}g;
	$conf =~ s{/etc/ssl/certs/example\.com\.pem}{$d/cert.pem}g;
	$conf =~ s{/etc/ssl/private/example\.com\.key}{$d/cert.key}g;

	# listen [addr:]port -> 127.0.0.1:free; proxy_pass to the same
	$conf =~ s/\blisten\s+(?:[\d.]+:)?(\d+)\b/listen 127.0.0.1:$PORT{$1}/g;
	$conf =~ s{(proxy_pass http://127\.0\.0\.1:)(\d+)}{$1$PORT{$2}}g;

	return $conf;
}

sub relay_port { $PORT{21117} }

# TLS files for the two WSS examples
make_cert($t);

###############################################################################

# the all-in-one example: nginx.conf includes rustdesk.conf, as the Debian
# package's users include it from /etc/nginx/nginx.conf

my $main = example('nginx.conf');
like($main, qr/^include rustdesk\.conf;$/m, 'nginx.conf includes rustdesk.conf');

$t->write_file_expand('nginx.conf', "%%TEST_GLOBALS%%\n$main");
$t->write_file('rustdesk.conf', example('rustdesk.conf'));

my ($rc, $out) = $t->test_config();
is($rc, 0, 'nginx.conf: nginx -t') or diag($out);

for my $name (qw/ nginx-wss-stream.conf nginx-wss-http.conf /) {
	$t->write_file_expand($name, "%%TEST_GLOBALS%%\n" . example($name));
	($rc, $out) = $t->test_config($name);
	is($rc, 0, "$name: nginx -t") or diag($out);
}

$t->run();

my $key = $t->read_file('data/id_ed25519.pub');
ok(length($key) == 44, 'the key pair was made in the key directory');

is(RustDesk::Session::relayed_session(host => '127.0.0.1',
	rendezvous_port => $PORT{21116}, relay_port => relay_port(),
	key => $key), '', 'a relayed session with the key');

# the example's access log: the session's one relay line, no heartbeat

ok(Test::Nginx::wait_until(sub { $t->read_file('rustdesk.log')
		=~ m{ tcp RequestRelay paired id=- peer=session\d+ uuid=\S+ partner=127\.0\.0\.1:\d+ sent=\d+ received=\d+ paired=\d+\.\d{3} } }),
	'the access log: the relayed session with its brokered id');
unlike($t->read_file('rustdesk.log'), qr/ RegisterPeer OK /,
	'the access log: no heartbeat');

is(RustDesk::Session::relay_refused(host => '127.0.0.1',
	relay_port => relay_port(), key => 'not-the-key'), '',
	'the relay refuses a wrong key');

is(RustDesk::Session::relay_refused(host => '127.0.0.1',
	relay_port => relay_port(), key => ''), '',
	'the relay refuses a client without a key');

like(RustDesk::RelayTest::console($PORT{21120}, 'h')
	. RustDesk::RelayTest::console($PORT{21121}, 'h'),
	qr/relay-servers.*blacklist-add/s, 'both consoles answer on loopback');

my $m = RustDesk::Metrics::scrape($PORT{9117});
is(join(' ', map { $m->{$_} // 'none' } 'rustdesk_relay_pairs_total',
	'rustdesk_rendezvous_relay_requests_total{result="OK"}'), '1 1',
	'the metrics listener: the relayed session');

$t->stop();
