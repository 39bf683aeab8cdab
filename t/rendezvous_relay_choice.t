#!/usr/bin/perl

# Relay choice by variables: rustdesk_relay_servers and rustdesk_local_ip
# evaluated for the requester (A), with map, geo and Debian's geoip2
# module.  A's address decides in PunchHole and FetchLocalAddr (A's own
# session) and in the RelayResponse rewritten for A (a session made for
# A's address), whatever B's address is; behind a trusted proxy (PROXY
# protocol, a WebSocket X-Real-IP) A's real address decides.  A value
# naming several relays is a set: rotated, health-checked (a relay that
# stops accepting drops out within the check interval and comes back; a
# set all down is offered whole and logged once).  The console's test-geo
# shows what an address would be offered.

use warnings;
use strict;

use Test::More;
use IO::Socket::INET;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client qw/ mangle msg_norm addr /;
use RustDesk::WebSocket;

my $t = Test::Nginx->new()->has()->plan(41);

my $GEOIP2 = $ENV{TEST_NGINX_GEOIP2_MODULE}
	// '/usr/lib/nginx/modules/ngx_stream_geoip2_module.so';

my ($P5, $P6) = (port(5), port(6));     # relays: Perl listeners
my %listener;

my $B_IP = '127.0.0.1';                 # B: maps to the defaults
my %PK;
my $nb = 0;

###############################################################################

# map $remote_addr: single relays, a set of names (unchecked), a set of
# addresses (checked, space-separated); the local IP by map too, with a
# LAN mask 127.0.0.64/26

listen_on($P5);
listen_on($P6);

start([ 'map $remote_addr $relay_for_client {',
	'    127.0.0.2  de.example:21117;',
	'    127.0.0.3  "us1.example:21117,us2.example:21117";',
	'    127.0.0.4  "127.0.0.1:%%PORT_5%% 127.0.0.1:%%PORT_6%%";',
	'    default    eu.example:21117;',
	'}',
	'map $remote_addr $local_for_client {',
	'    127.0.0.2  10.0.0.2;',
	'    default    10.0.0.1;',
	'}',
	'rustdesk_relay_servers $relay_for_client;',
	'rustdesk_local_ip $local_for_client;',
	'rustdesk_lan_mask 127.0.0.64/26;' ]);

my $key = $t->key();

{
	my $pb = peer_b($B_IP);

	is(hole($pb, '127.0.0.2'), 'punch_hole{nat_type=1 '
		. 'relay_server=de.example:21117 socket_addr=A}',
		'map: PunchHole, A at 127.0.0.2: its relay');
	is(hole($pb, '127.0.0.5'), 'punch_hole{nat_type=1 '
		. 'relay_server=eu.example:21117 socket_addr=A}',
		'map: PunchHole, A at 127.0.0.5: the default');
	is(join(' ', sort keys %{{ map { relay_of($pb, '127.0.0.3') => 1 }
		1 .. 6 }}), 'us1.example:21117 us2.example:21117',
		'map: PunchHole, A at 127.0.0.3: a set of two, in turn');

	# same IP: FetchLocalAddr, with the relay of A (and B) at that IP

	for my $ip ('127.0.0.2', '127.0.0.5') {
		my $same = peer_b($ip);
		my $exp = $ip eq '127.0.0.2' ? 'de' : 'eu';
		is(hole($same, $ip), "fetch_local_addr{relay_server=$exp.example:21117"
			. ' socket_addr=A}', "map: FetchLocalAddr at $ip: its relay");
	}

	# B inside the LAN mask, A outside: forced relay, A's local IP

	my $lan_b = peer_b('127.0.0.70');
	is(hole($lan_b, '127.0.0.2'), 'punch_hole{nat_type=2 '
		. 'relay_server=10.0.0.2 socket_addr=A}',
		'map: PunchHole to a LAN-side B: A\'s local IP');
	is(hole($lan_b, '127.0.0.5'), 'punch_hole{nat_type=2 '
		. 'relay_server=10.0.0.1 socket_addr=A}',
		'map: PunchHole to a LAN-side B from elsewhere: the default local IP');

	# RelayResponse: B (at 127.0.0.1, which maps to the defaults) answers
	# with the local IP; A gets the relay for A's address

	is(relay_answer($pb, '127.0.0.2', '10.0.0.2'), 'de.example:21117',
		'map: RelayResponse with A\'s local IP: A\'s relay');
	is(relay_answer($pb, '127.0.0.5', '10.0.0.1'), 'eu.example:21117',
		'map: RelayResponse with the local IP, A elsewhere: the default');
	is(relay_answer($pb, '127.0.0.2', '10.0.0.1'), '10.0.0.1',
		'map: RelayResponse with another local IP than A\'s: kept');
	is(relay_answer($pb, '127.0.0.66', 'r:1'), '10.0.0.1',
		'map: RelayResponse to a LAN-side A: A\'s local IP');

	# behind trusted proxies the real address decides

	my $w = RustDesk::WebSocket->connect(port(3),
		headers => [ [ 'X-Real-IP', '127.0.0.2' ] ]);
	$w->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1 });
	is(norm($pb->{udp}->recv_msg()), 'punch_hole{nat_type=1 '
		. 'relay_server=de.example:21117 socket_addr=127.0.0.2:'
		. $w->sock()->sockport() . '}',
		'map: WebSocket from a trusted proxy: X-Real-IP decides');

	my $pp = RustDesk::Client->tcp(port(4));
	$pp->send_raw("PROXY TCP4 127.0.0.2 127.0.0.1 4321 2000\r\n");
	$pp->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1 });
	is(norm($pb->{udp}->recv_msg()), 'punch_hole{nat_type=1 '
		. 'relay_server=de.example:21117 socket_addr=127.0.0.2:4321}',
		'map: PROXY protocol from a trusted proxy: its address decides');

	# the console

	is(cmd('tg 127.0.0.2 127.0.0.5'), '"de.example:21117"',
		'test-geo: the relay of the first address');
	is(cmd('tg 127.0.0.5 127.0.0.2'), '"eu.example:21117"',
		'test-geo: the other way round');
	like(cmd('tg 127.0.0.3 127.0.0.1'), qr/^"us[12]\.example:21117"$/,
		'test-geo: a set');
	like(cmd('rs'), qr/^\$relay_for_client\n/,
		'relay-servers: the value');
}

# health checks of a set, in each worker: 127.0.0.4's relays are two
# Perl listeners; first make sure both workers have met the set

{
	my $pb = peer_b($B_IP);
	my $set = "127.0.0.1:$P5,127.0.0.1:$P6";
	my $both = join(' ', sort "127.0.0.1:$P5", "127.0.0.1:$P6");
	my %w;

	for (1 .. 40) {
		my $rq = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.4');
		$rq->send_msg(punch_hole_request => { id => $pb->{id},
			licence_key => $key, nat_type => 1 });
		$pb->{udp}->recv_msg();
		$w{$t->worker_of($rq)} = 1;
		last if 2 == grep { $w{$_} } $t->worker_pids();
	}

	is(offered($pb), $both, 'set: both offered');

	close_listener($P6);
	ok(each_worker(qr/relay server "127\.0\.0\.1:$P6" is down/),
		'set: a relay that stops accepting is found down by each worker');
	is(offered($pb), "127.0.0.1:$P5", 'set: then not offered');
	like(cmd('rs'), qr/^"\Q$set\E": 127\.0\.0\.1:$P5$/m,
		'set: relay-servers shows what it offers');

	listen_on($P6);
	ok(each_worker(qr/relay server "127\.0\.0\.1:$P6" is up/),
		'set: accepting again, found up by each worker');
	is(offered($pb), $both, 'set: offered again');

	close_listener($P5);
	close_listener($P6);

	my $all = qr/no relay server of "\Q$set\E" is up/;
	ok(each_worker($all), 'set: all down, logged by each worker');
	is(offered($pb), $both,
		'set: all down, all offered');
	is($t->log_count($all), 2, 'set: all down, logged once a worker');
}

###############################################################################

# geo, with a fixed local IP

start([ 'geo $relay_for_client {',
	'    default       eu.example:21117;',
	'    127.0.0.8/29  asia.example:21117;',
	'    127.0.0.2     de.example:21117;',
	'}',
	'rustdesk_relay_servers $relay_for_client;',
	'rustdesk_local_ip 10.9.9.9;' ]);

{
	my $pb = peer_b($B_IP);

	is(relay_of($pb, '127.0.0.9'), 'asia.example:21117',
		'geo: PunchHole, A in a network');
	is(relay_of($pb, '127.0.0.2'), 'de.example:21117',
		'geo: PunchHole, A at an address');
	is(relay_of($pb, '127.0.0.20'), 'eu.example:21117',
		'geo: PunchHole, A elsewhere: the default');

	my $same = peer_b('127.0.0.10');
	is(hole($same, '127.0.0.10'), 'fetch_local_addr{'
		. 'relay_server=asia.example:21117 socket_addr=A}',
		'geo: FetchLocalAddr: the relay of A\'s network');

	is(relay_answer($pb, '127.0.0.9', '10.9.9.9'), 'asia.example:21117',
		'geo: RelayResponse with the local IP: A\'s relay');
	is(relay_answer($pb, '127.0.0.9', 'r:1'), 'r:1',
		'geo: RelayResponse with another relay: kept');

	is(cmd('tg 127.0.0.12 127.0.0.2'), '"asia.example:21117"',
		'geo: test-geo');
	is(cmd('tg 127.0.0.30'), '"eu.example:21117"',
		'geo: test-geo, one address');
}

# a value naming a variable nginx does not know: refused at start

{
	$t->write_file_expand('unknown.conf',
		conf([ 'rustdesk_relay_servers "$nope,127.0.0.1:21117";' ]));
	my ($rc, $out) = $t->test_config('unknown.conf');
	isnt($rc, 0, 'unknown variable: refused');
	like($out, qr/unknown "nope" variable/, 'unknown variable: said why');
}

###############################################################################

# geoip2 (Debian's libnginx-mod-stream-geoip2): a country picks the relay,
# from a MaxMind database made here (MaxMind::DB::Writer, Debian's
# libmaxmind-db-writer-perl) with 127.0.0.2 in DE and 127.0.0.3 in US

SKIP: {
	my $n = 5;

	skip "no $GEOIP2: install libnginx-mod-stream-geoip2", $n
		unless -f $GEOIP2;
	skip 'no MaxMind::DB::Writer: install libmaxmind-db-writer-perl', $n
		unless eval { require MaxMind::DB::Writer::Tree; 1 };

	write_mmdb($t->testdir() . '/country.mmdb',
		'127.0.0.2/32' => 'DE', '127.0.0.3/32' => 'US');

	$t->load_modules($GEOIP2);

	my @geoip2 = ('geoip2 %%TESTDIR%%/country.mmdb {',
		'    $country country iso_code;',
		'}',
		'map $country $relay_for_client {',
		'    DE       de.example:21117;',
		'    US       us.example:21117;',
		'    default  eu.example:21117;',
		'}',
		'rustdesk_relay_servers $relay_for_client;');

	# a module built for another nginx (make test-nginx) does not load
	$t->write_file_expand('geoip2.conf', conf(\@geoip2));
	my ($rc, $out) = $t->test_config('geoip2.conf');
	my ($why) = $out =~ /\[emerg\] (.*)/;

	skip "$GEOIP2 does not load into this nginx: " . ($why // $out), $n
		if $rc;

	start(\@geoip2);

	my $pb = peer_b($B_IP);

	is(relay_of($pb, '127.0.0.2'), 'de.example:21117',
		'geoip2: A in DE: its relay');
	is(relay_of($pb, '127.0.0.3'), 'us.example:21117',
		'geoip2: A in US: its relay');
	is(relay_of($pb, '127.0.0.4'), 'eu.example:21117',
		'geoip2: A in no country: the default');
	is(cmd('tg 127.0.0.3 127.0.0.2'), '"us.example:21117"',
		'geoip2: test-geo');
	is(cmd('tg 127.0.0.2 127.0.0.3'), '"de.example:21117"',
		'geoip2: test-geo, the other way round');
}

###############################################################################

# The configuration: the punch directives, then the rendezvous server (1),
# its console (2), its WebSocket port behind a trusted proxy (3) and a
# PROXY protocol port (4).

sub conf {
	my ($directives) = @_;

	return stream_conf([ 'rustdesk_key_dir %%TESTDIR%%/keys;',
		'rustdesk_real_ip_from 127.0.0.1;', @$directives ],
		srv_rendezvous(1), srv_console(2), srv_ws_rendezvous(3),
		srv_block([ '127.0.0.1:%%PORT_4%% proxy_protocol' ],
			'set_real_ip_from 127.0.0.1;', 'rustdesk_rendezvous;'));
}

sub start {
	my ($directives) = @_;
	$t->restart(conf($directives));
}

sub peer_b {
	my ($ip) = @_;
	return RustDesk::Client->udp_peer(port(1), sprintf('choice-b-%03d', ++$nb),
		LocalAddr => $ip, keys => \%PK);
}

# What B heard when A (a new TCP connection from $ip) asked for it, as
# text, A's address shown as "A" when it is right.

sub hole {
	my ($pb, $ip, $nat) = @_;

	my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $ip);
	$rq->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => $nat // 1 });

	my $a = addr($rq);
	my $got = norm($pb->{udp}->recv_msg());
	$rq->close();

	$got =~ s/socket_addr=\Q$a\E\b/socket_addr=A/;
	return $got;
}

# The relay B heard of in a PunchHole or FetchLocalAddr for A at $ip.

sub relay_of {
	my ($pb, $ip) = @_;
	my ($relay) = hole($pb, $ip) =~ /relay_server=(\S+)/;
	return $relay // 'none';
}

# The relays A at 127.0.0.4 is offered in six requests, sorted.

sub offered {
	my ($pb) = @_;
	my %seen = map { relay_of($pb, '127.0.0.4') => 1 } 1 .. 6;
	return join(' ', sort keys %seen);
}

# The relay server A (a new connection from $ip) gets in a RelayResponse
# in which B (from its own IP) said $relay.

sub relay_answer {
	my ($pb, $ip, $relay) = @_;

	my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $ip);
	$rq->send_msg(request_relay => { id => $pb->{id}, uuid => 'u-choice',
		relay_server => $relay });

	my ($type, $m) = $pb->{udp}->recv_msg();
	return 'RequestRelay: ' . norm($type, $m)
		unless ($type // '') eq 'request_relay';

	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
	$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
		uuid => 'u-choice', relay_server => $relay, id => $pb->{id},
		version => '1.3.0' });

	($type, $m) = $rq->recv_msg();
	return 'RelayResponse: ' . norm($type, $m)
		unless ($type // '') eq 'relay_response';

	return $m->{relay_server} // '';
}

# A console command's answer.

sub cmd {
	my ($c) = @_;

	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . port(2),
		Proto => 'tcp') or die "console: $!\n";
	$s->syswrite($c);

	my $out = '';
	while ($s->sysread(my $buf, 4096)) {
		$out .= $buf;
	}

	return $out;
}

# A relay that accepts: a listener on 127.0.0.1:$port, whose connections
# are taken off its queue while the test waits (drain()).

sub listen_on {
	my ($port) = @_;

	$listener{$port} = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
		Listen => 128, ReuseAddr => 1, Blocking => 0)
		or die "listen on $port: $!\n";
}

sub close_listener {
	my ($port) = @_;
	close(delete $listener{$port});
}

sub drain {
	for my $l (values %listener) {
		while (my $c = $l->accept()) {
			close $c;
		}
	}
}

# True once each worker has logged a line matching (10 s at most: the
# checks are 3 s apart).

sub each_worker {
	my ($re) = @_;

	return wait_until(sub {
		drain();

		my ($log, %w) = $t->read_file('error.log');
		$w{$1} = 1 while $log =~ /(\d+)#\d+: .*$re/g;

		return 2 == grep { $w{$_} } $t->worker_pids();
	}, 10);
}

# A MaxMind DB: networks and their countries (country.iso_code).

sub write_mmdb {
	my ($file, %country) = @_;

	my $tree = MaxMind::DB::Writer::Tree->new(ip_version => 4,
		record_size => 24, database_type => 'Test-Country',
		languages => [ 'en' ], description => { en => 'test countries' },
		remove_reserved_networks => 0,
		map_key_type_callback => sub {
			{ country => 'map', iso_code => 'utf8_string' }->{$_[0]}
		});

	$tree->insert_network($_, { country => { iso_code => $country{$_} } })
		for keys %country;

	open my $fh, '>:raw', $file or die "$file: $!\n";
	$tree->write_tree($fh);
	close $fh;
}

# (type, fields) as text (RustDesk::Client::msg_norm).

sub norm { msg_norm($key, \%PK, @_) }

###############################################################################
