#!/usr/bin/perl

# The metrics listener (README "Metrics and health"): GET /metrics in the
# Prometheus text format, accepted by promtool; the figures after known
# traffic, whichever worker each request landed on (registrations over UDP
# and TCP, punch hole requests with known results, relayed sessions of
# known size, answers, the database, the zones); a killed worker's gauges
# gone and its counts kept; counters that survive a reload; loopback clients only unless "remote", by the real address
# (PROXY protocol), with nginx's allow and deny for the rest; behind an
# http {} proxy with TLS and basic authentication; each module alone.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_text /;
use RustDesk::Relay qw/ relay_request /;
use RustDesk::Metrics;
use RustDesk::Session;

my $t = Test::Nginx->new()->has()->allow_log(qr/exited on signal 9\b/);

plan(skip_all => 'no IO::Socket::SSL') unless eval { require IO::Socket::SSL };

$t->plan(33);

make_cert($t);
$t->write_file('htpasswd', "scraper:{PLAIN}s3cret\n");

$t->write_file_expand('nginx.conf', both_conf());
$t->run();

my $key = $t->key();
my $M = port(3);

###############################################################################

# the exposition as it is, before any traffic

my ($status, $h, $body) = http_get($M, '/metrics');

is($status, 200, 'GET /metrics: 200');
is($h->{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
	'Content-Type of the text format 0.0.4');
is($h->{connection}, 'close', 'Connection: close');
is(promtool($body), 'ok', 'promtool check metrics: no problem');
unlike($body, qr/rustdesk_cluster_/, 'no cluster figures without a cluster');

my $m = scrape($M);
is(join(' ', map { $m->{$_} // 'none' }
	'rustdesk_zone_size_bytes{module="rendezvous",zone="rdz"}',
	'rustdesk_zone_size_bytes{module="relay",zone="rlz"}'),
	(4 * 1024 * 1024) . ' ' . (1024 * 1024),
	'both zones, their sizes as configured');
ok(($m->{'rustdesk_zone_used_bytes{module="rendezvous",zone="rdz"}'} // 0)
	> 0, 'rendezvous zone: pages in use');
ok(($m->{'rustdesk_zone_size_bytes{module="rendezvous",'
	. 'zone="rustdesk_brokered"}'} // 0) > 0,
	'the brokered relay sessions\' zone too');

###############################################################################

# known traffic

# 3 peers registered over UDP (RegisterPk, then a RegisterPeer heartbeat)

my @peers = map { RustDesk::Client->udp_peer(port(0), "mpeer$_") } 1 .. 3;

# a peer registered on a TCP stream it keeps open

my $ts = RustDesk::Client->tcp(port(0));
$ts->send_msg(register_pk => { id => 'mstream1', uuid => 'uuid-stream',
	pk => 'k' x 32 });
my ($type, $msg) = $ts->recv_msg();
is(msg_text($type, $msg), 'register_pk_response{keep_alive=30}',
	'a registration over TCP: OK');

# punch hole requests: 1 passed on to a peer online, 2 for ids unknown,
# 1 with a wrong key

is(punch($peers[0]{id}, $key), '', 'punch hole request to a peer online: '
	. 'no answer to A yet');
is(punch('nosuch1', $key), 'punch_hole_response{}',
	'punch hole request for an unknown id: ID_NOT_EXIST');
is(punch('nosuch2', $key), 'punch_hole_response{}',
	'another: ID_NOT_EXIST');
is(punch($peers[0]{id}, 'wrong-key'), 'punch_hole_response{failure=3}',
	'punch hole request with a wrong key: LICENSE_MISMATCH');

# 2 relayed sessions: 12 bytes one way, 65536 the other, each

for my $n (1 .. 2) {
	is(RustDesk::Session::relayed_session(rendezvous_port => port(0),
		relay_port => port(2), key => $key), '', "relayed session $n");
}

my %want = (
	'rustdesk_rendezvous_registrations_total{transport="udp",result="OK"}' => 5,
	'rustdesk_rendezvous_registrations_total{transport="tcp",result="OK"}' => 1,
	'rustdesk_rendezvous_registrations_total{transport="ws",result="OK"}' => 0,
	'rustdesk_rendezvous_heartbeats_total{result="OK"}' => 5,
	'rustdesk_rendezvous_heartbeats_total{result="REQUEST_PK"}' => 0,
	'rustdesk_rendezvous_punch_requests_total{result="OK"}' => 1,
	'rustdesk_rendezvous_punch_requests_total{result="ID_NOT_EXIST"}' => 2,
	'rustdesk_rendezvous_punch_requests_total{result="LICENSE_MISMATCH"}' => 1,
	'rustdesk_rendezvous_punch_requests_total{result="OFFLINE"}' => 0,
	'rustdesk_rendezvous_relay_requests_total{result="OK"}' => 2,
	'rustdesk_rendezvous_peers' => 6,
	'rustdesk_rendezvous_peers_online' => 6,
	'rustdesk_rendezvous_streams{transport="tcp"}' => 1,
	'rustdesk_rendezvous_database_writes_total{result="ok"}' => 6,
	'rustdesk_rendezvous_database_writes_total{result="error"}' => 0,
	'rustdesk_relay_pairs_total' => 2,
	'rustdesk_relay_pairs_active' => 0,
	'rustdesk_relay_waiting' => 0,
	'rustdesk_relay_bytes_total' => 2 * (12 + 65536),
	'rustdesk_relay_sessions_total{result="paired"}' => 2,
	'rustdesk_relay_sessions_total{result="key_mismatch"}' => 0,
);

# counted as each request ends: a scrape may come a moment before the last
is(wait_value(sub { differences(scrape($M), \%want) }, '', 5), '',
	'the figures of that traffic, exactly');

$m = scrape($M);
is(($m->{'rustdesk_rendezvous_answers_total{worker="same"}'} // 0)
	+ ($m->{'rustdesk_rendezvous_answers_total{worker="other"}'} // 0), 2,
	'answers delivered: the 2 RelayResponses');
is(join(' ', map { $m->{"rustdesk_worker_channel_$_"} // 'none' }
	'dropped_total{module="rendezvous"}', 'dropped_total{module="relay"}'),
	'0 0', 'worker channels: nothing dropped');
is(promtool($m->{_text}), 'ok', 'promtool: no problem after the traffic');

# the stream closes: its gauge goes, the peer stays online (30 s grace)

$ts->close();
is(wait_value(sub { scrape($M)->{'rustdesk_rendezvous_streams{transport="tcp"}'}
	// 'none' }, '0', 5), '0', 'stream closed: no stream any more');

###############################################################################

# a worker killed with a live pair: the pair is gone from the gauge (a dead
# worker's share is not summed; its slot goes to the new worker), the
# counters keep what it counted

my $ra = RustDesk::Client->tcp(port(2));
$ra->send_raw(relay_request(uuid => 'gauge-pair'));

# A waits first: the pair is then forwarded by A's worker
is(wait_value(sub { scrape($M)->{rustdesk_relay_waiting} // 'none' },
	'1', 5), '1', 'a relay connection waiting: relay_waiting 1');

my $rb = RustDesk::Client->tcp(port(2));
$rb->send_raw(relay_request(uuid => 'gauge-pair'));

is(wait_value(sub { scrape($M)->{rustdesk_relay_pairs_active} // 'none' },
	'1', 5), '1', 'a live pair: pairs_active 1');

my $victim = $t->worker_of($ra);
$t->kill_worker($victim) if $victim;

$m = scrape($M);
is(join(' ', map { $m->{$_} // 'none' } 'rustdesk_relay_pairs_active',
	'rustdesk_relay_pairs_total'), '0 3',
	'its worker killed: pairs_active 0, pairs_total kept');

$ra->close();
$rb->close();

###############################################################################

# a reload keeps the counters (they are in the zones)

$t->reload();

$m = scrape($M);
is(join(' ', map { $m->{$_} // 'none' }
	'rustdesk_relay_pairs_total',
	'rustdesk_rendezvous_registrations_total{transport="udp",result="OK"}',
	'rustdesk_rendezvous_punch_requests_total{result="ID_NOT_EXIST"}'),
	'3 5 2', 'after a reload: the same counters ' . $t->replaced());

###############################################################################

# loopback only, by the real address: a client that the PROXY protocol
# says is 10.1.2.3 is refused on the plain listener; the "remote" one
# serves it, and nginx's deny refuses anyone else there

is(proxied(4, '10.1.2.3'), 'closed', 'non-loopback client: closed');
ok($t->wait_log(qr/metrics refused to a non-loopback client.*client: 10\.1\.2\.3/),
	'... and logged at info');
is(proxied(4, '127.0.0.9'), 200, 'loopback client behind PROXY: served');
is(proxied(5, '10.1.2.3'), 200, '"remote", allowed by allow: served');
is(proxied(5, '10.9.9.9'), 'closed', '"remote", denied by deny: closed');

###############################################################################

# behind http {}: TLS and basic authentication, proxy_pass to the listener

is((https_get(6, ''))[0], 401, 'through https: 401 without credentials');

my ($hs, $hb) = https_get(6, 'scraper:s3cret');
is($hs . ' ' . ($hb =~ /^rustdesk_relay_pairs_total 3$/m ? 'figures' : 'none'),
	'200 figures', 'through https with credentials: the metrics');

###############################################################################

# each module alone, its own figures only

$t->stop();
$t->modules('relay');
$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_relay_zone rlz:1m;',
], srv_relay(2), srv_block([ '127.0.0.1:%%PORT_3%%' ], 'rustdesk_metrics;')));
$t->run();

$m = scrape($M);
is(join(' ', defined $m->{'rustdesk_relay_pairs_total'} ? 'relay' : (),
	(grep { /^rustdesk_rendezvous_/ } keys %$m) ? 'rendezvous' : ()),
	'relay', 'the relay module alone: its figures');

$t->stop();
$t->modules('rendezvous');
$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_database off;',
], srv_rendezvous(0), srv_block([ '127.0.0.1:%%PORT_3%%' ],
	'rustdesk_metrics;')));
$t->run();

RustDesk::Client->udp_peer(port(0), 'alone1');

$m = scrape($M);
is(join(' ', map { $m->{$_} // 'none' } 'rustdesk_rendezvous_peers',
	'rustdesk_relay_pairs_total'), '1 none',
	'the rendezvous module alone: its figures (a new zone: 1 peer)');

###############################################################################

sub both_conf {
	return stream_conf([
		'rustdesk_key_dir %%TESTDIR%%/keys;',
		'rustdesk_zone rdz:4m;',
		'rustdesk_relay_zone rlz:1m;',
		'rustdesk_relay_servers 127.0.0.1:%%PORT_2%%;',
		'rustdesk_ip_blocker 1000 1000;',
		'rustdesk_online_timeout 10m;',       # online throughout the test
	], srv_rendezvous(0), srv_relay(2),
	srv_block([ '127.0.0.1:%%PORT_3%%' ], 'rustdesk_metrics;'),
	srv_block([ '127.0.0.1:%%PORT_4%% proxy_protocol' ],
		'set_real_ip_from 127.0.0.1;', 'rustdesk_metrics;'),
	srv_block([ '127.0.0.1:%%PORT_5%% proxy_protocol' ],
		'set_real_ip_from 127.0.0.1;', 'allow 10.1.2.3;', 'deny all;',
		'rustdesk_metrics remote;'))
	. http_conf([], srv_block([ '127.0.0.1:%%PORT_6%% ssl' ], tls(),
		'location = /metrics {',
		'    auth_basic "metrics";',
		'    auth_basic_user_file %%TESTDIR%%/htpasswd;',
		'    proxy_pass http://127.0.0.1:%%PORT_3%%;',
		'}'));
}

# promtool check metrics on the text: 'ok', or what it says (or that
# there is no promtool: scripts/install-deps --test installs it)
sub promtool {
	my ($text) = @_;
	my $f = $t->testdir() . '/scrape.txt';

	return 'no promtool (Debian package prometheus)' unless has_prometheus();

	open my $fh, '>', $f or die "$f: $!";
	print $fh $text;
	close $fh;

	my $out = `promtool check metrics < $f 2>&1`;
	return $? == 0 && $out !~ /\S/ ? 'ok' : "promtool ($?): $out";
}

# The samples of %$want that differ in the scrape: '' when none.
sub differences {
	my ($m, $want) = @_;
	return "no scrape: $m->{_status}" if $m->{_status};
	return join(', ', map { "$_ = " . ($m->{$_} // 'none') . " (not $want->{$_})" }
		grep { ($m->{$_} // 'none') ne $want->{$_} } sort keys %$want);
}

# A PunchHoleRequest on a new connection: the answer as text, '' when none
# comes at once (it was passed on to the peer).
sub punch {
	my ($id, $licence) = @_;
	my $c = RustDesk::Client->tcp(port(0));
	$c->send_msg(punch_hole_request => { id => $id, licence_key => $licence,
		nat_type => 1 });
	my ($type, $m) = $c->recv_msg(1);
	$c->close();
	return defined $type ? msg_text($type, $m) : '';
}

# GET /metrics on listener n with a PROXY header naming ip: the status, or
# 'closed'.
sub proxied {
	my ($n, $ip) = @_;
	my $raw = http_raw(port($n), "PROXY TCP4 $ip 127.0.0.1 40000 "
		. port($n) . "\r\nGET /metrics HTTP/1.0\r\n\r\n");
	my ($status) = RustDesk::Metrics::parse_answer($raw);
	return $status // 'closed';
}

# GET /metrics through the https proxy, with user:password or none:
# (status, body).
sub https_get {
	my ($n, $auth) = @_;
	my $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1:' . port($n),
		SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE())
		or return ('no TLS: ' . IO::Socket::SSL::errstr(), '');

	require MIME::Base64;
	my $a = length $auth ? 'Authorization: Basic '
		. MIME::Base64::encode_base64($auth, '') . "\r\n" : '';

	print $s "GET /metrics HTTP/1.0\r\nHost: localhost\r\n$a\r\n";
	local $/;
	my $raw = <$s> // '';
	close $s;

	my ($status, $h, $body) = RustDesk::Metrics::parse_answer($raw);
	return ($status // 'none', $body);
}

###############################################################################
