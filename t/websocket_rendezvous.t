#!/usr/bin/perl

# The rendezvous server over WebSocket (WS.md; PROTOCOL.md sections 1, 2,
# 6 and 8): TestNatRequest and OnlineRequest answered on any path; A asks
# for B over WebSocket (PunchHoleRequest, RequestRelay), B hears over UDP
# (PunchHole, never FetchLocalAddr, even at A's IP) and answers on a new
# TCP connection; A gets the answer over WebSocket, whichever worker B's
# connection landed on.  A TCP and a WebSocket requester for the same B.
# The client address a trusted proxy names (X-Real-IP, X-Forwarded-For),
# ignored from anywhere else; through an http {} reverse proxy in the same
# nginx, plain and TLS; WSS by the stream module itself.
#
# B's answers may come over WebSocket too (PunchHoleSent, RelayResponse,
# LocalAddr).
#
# Addresses are compared decoded (AddrMangle carries the time), signed
# keys are verified with the server's public key.  B's UDP socket is
# connected to the main port, as B's NAT would be: it hears only what the
# server sends from the port B registered with.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ mangle msg_norm addr /;
use RustDesk::WebSocket;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->has()->plan(32);

my $d = $t->testdir();

make_cert($t);

# port 1: TCP/UDP main port; 3: WebSocket; 4: WSS (stream TLS); 5 and 6:
# http {} reverse proxies (plain, TLS) to port 3, as in
# conf.example/nginx-wss-http.conf; 2: the relay server offered

start('rustdesk_real_ip_from 127.0.0.1;');

my $key = $t->key();

my ($MAIN, $RELAY, $WS, $WSS, $PROXY, $PROXY_TLS) = map { port($_) } 1 .. 6;
my $RELAY_SERVER = "127.0.0.1:$RELAY";

my @workers = $t->worker_pids();
my @B_IPS = map { "127.0.0.$_" } 10 .. 29;
my %PK;                                 # id -> B's registered key
my $nb = 0;                             # Bs registered

# how long B waits for what the server sends it over UDP; a loop of flows
# stops at its first failure, so that a broken server fails the file in
# well under a minute
my $B_WAIT = 2;

###############################################################################

# 1. TestNatRequest and OnlineRequest over WebSocket, on any path: answered,
# then the connection closes

{
	my @bad;

	for my $path ('/', '/ws/id', '/some/where?x=1') {
		my $w = ws($WS, path => $path) or do {
			push @bad, "$path: no upgrade"; next;
		};
		$w->send_msg(test_nat_request => { serial => 0 });
		my $got = norm($w->recv_msg());
		my $exp = 'test_nat_response{port=' . $w->sock()->sockport() . '}';
		push @bad, "$path: $got, expected $exp" if $got ne $exp;
		push @bad, "$path: not closed" unless $w->closed();
	}

	is(join("\n", @bad), '', 'TestNatRequest over WebSocket: the source '
		. 'port, then closed, on any path');
}

{
	my @pb = map { peer_b($B_IPS[$_]) } 0 .. 1;
	my @peers = ($pb[0]{id}, 'ws-nobody-1', $pb[1]{id}, map({ "ws-nobody-$_" }
		2 .. 6), $pb[0]{id}, 'ws-nobody-7');
	my @bad;

	for my $path ('/', '/ws/id') {
		my $w = ws($WS, path => $path) or do {
			push @bad, "$path: no upgrade"; next;
		};
		$w->send_msg(online_request => { id => 'ws-asker', peers => \@peers });
		my $got = norm($w->recv_msg());
		push @bad, "$path: $got" if $got ne 'online_response{states=hex:a080}';
		push @bad, "$path: not closed" unless $w->closed();
	}

	is(join("\n", @bad), '', 'OnlineRequest over WebSocket: the bitmap, '
		. 'then closed');
}

###############################################################################

# 2. punch flows with A over WebSocket and B over UDP; A and B at the same
# IP in one flow of three: still PunchHole; B's answer lands on either
# worker

my $relayed0 = $t->log_count(qr/answer relayed from worker/);
my (@bad, @pairs, $same_ip);

for my $n (1 .. 24) {
	my $pb = peer_b($B_IPS[$n % 10]);
	my $a_ip = $n % 3 ? '127.0.0.2' : $pb->{ip};
	my $w = ws($WS, path => $n % 2 ? '/ws/id' : '/', LocalAddr => $a_ip);

	unless ($w) {
		push @bad, "flow $n: no upgrade";
		next;
	}

	my %f = punch($pb, $w, addr($w));
	push @bad, "flow $n" . ($a_ip eq $pb->{ip} ? ' (same IP)' : '')
		. ": $f{bad}" if $f{bad};
	push @pairs, [ addr($w), $f{bt} ];
	$same_ip++ if $a_ip eq $pb->{ip} && !$f{bad};
	$w->close();
	last if @bad;
}

is(join("\n", @bad), '', '24 punch flows over WebSocket: exact fields, '
	. 'signed key, B closed after');
is($same_ip // 0, 8, 'A and B at the same IP: PunchHole, not FetchLocalAddr');

{
	my $relayed = $t->log_count(qr/answer relayed from worker/) - $relayed0;
	my ($cross, $unknown) = $t->split_pairs(@pairs);

	note("24 flows: $relayed answers relayed from the other worker");
	ok($relayed > 0, "answers crossed workers ($relayed of 24)");
	is("$relayed/$unknown", "$cross/0", 'one "relayed" line per flow whose '
		. 'A and B landed on different workers');
}

# the contrast: A over TCP at B's IP gets FetchLocalAddr sent to B

{
	my $pb = peer_b('127.0.0.1');
	my $rq = RustDesk::Client->tcp($MAIN, LocalAddr => '127.0.0.1');
	$rq->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1 });
	my ($type) = $pb->{udp}->recv_msg();
	is($type // 'nothing', 'fetch_local_addr',
		'A over TCP at B\'s IP: FetchLocalAddr (the test can tell)');

	my $w = ws($WS, LocalAddr => '127.0.0.1');
	my %f = $w ? punch($pb, $w, addr($w)) : (bad => 'no upgrade');
	is($f{bad}, '', 'A over WebSocket at B\'s IP (127.0.0.1): PunchHole, '
		. 'a full flow');
}

# failures answered over WebSocket

{
	my $pb = peer_b($B_IPS[11]);
	my $w = ws($WS);
	my @got;

	if ($w) {
		$w->send_msg(punch_hole_request => { id => $pb->{id},
			licence_key => 'wrong', nat_type => 1 });
		push @got, norm($w->recv_msg());
		$w->send_msg(punch_hole_request => { id => 'ws-unknown-1',
			licence_key => $key, nat_type => 1 });
		push @got, norm($w->recv_msg());
	}

	# ID_NOT_EXIST is 0: nothing on the wire but the empty message
	is(join(' ', @got), 'punch_hole_response{failure=3} '
		. 'punch_hole_response{}', 'over WebSocket: LICENSE_MISMATCH, '
		. 'ID_NOT_EXIST');
	is(norm($pb->{udp}->recv_msg(0.3)), '', 'B heard nothing of them');
}

###############################################################################

# 3. RequestRelay over WebSocket: forwarded to B with A's address; B's
# RelayResponse reaches A without the address and with B's signed key

{
	my @bad;
	my $relayed0 = $t->log_count(qr/answer relayed from worker/);

	# 10 flows, and more (30 at most) until an answer has crossed workers:
	# which worker accepts B's connection is the kernel's choice

	my $n;

	for ($n = 1; $n <= 30; $n++) {
		last if $n > 10
			&& $t->log_count(qr/answer relayed from worker/) > $relayed0;

		my $pb = peer_b($B_IPS[$n % 10 + 10]);
		my $w = ws($WS, path => '/ws/id', LocalAddr => '127.0.0.2') or do {
			push @bad, "$n: no upgrade"; next;
		};
		my $r = relay($pb, $w, addr($w), "u-ws-$n");
		push @bad, "$n: $r" if $r;
		$w->close();
		last if @bad;
	}

	is(join("\n", @bad), '', 'RequestRelay over WebSocket: ' . ($n - 1)
		. ' flows, exact fields');
	ok($t->log_count(qr/answer relayed from worker/) > $relayed0,
		'RequestRelay: answers crossed workers');
}

###############################################################################

# 4. a TCP requester and a WebSocket requester for the same B, answered in
# the other order; no second answer at either (checked for all at the end)

{
	my (@bad, @requesters);

	for my $n (1 .. 5) {
		my $pb = peer_b($B_IPS[$n + 3]);
		my $tc = RustDesk::Client->tcp($MAIN, LocalAddr => '127.0.0.2');
		my $w = ws($WS, LocalAddr => '127.0.0.2') or do {
			push @bad, "$n: no upgrade"; next;
		};

		my %as = (tcp => addr($tc), ws => addr($w));
		my %holes;

		for my $c ($tc, $w) {
			$c->send_msg(punch_hole_request => { id => $pb->{id},
				licence_key => $key, nat_type => 1, version => '1.3.0' });
			my ($type, $m) = $pb->{udp}->recv_msg($B_WAIT);
			my $got = norm($type, $m);
			my ($who) = grep { $got eq "punch_hole{nat_type=1 relay_server="
				. "$RELAY_SERVER socket_addr=$as{$_}}" } keys %as;
			if ($who) {
				$holes{$who} = $m;
			} else {
				push @bad, "$n: B heard $got";
			}
		}

		last unless keys %holes == 2;

		push @requesters, [ $n, $tc, $w ];

		for my $who (qw/ ws tcp /) {
			my $bt = RustDesk::Client->tcp($MAIN, LocalAddr => $pb->{ip});
			$bt->send_msg(punch_hole_sent => {
				socket_addr => $holes{$who}{socket_addr}, id => $pb->{id},
				relay_server => $RELAY_SERVER, nat_type => 2,
				version => '1.3.0' });

			my $got = norm(($who eq 'ws' ? $w : $tc)->recv_msg());
			my $exp = "punch_hole_response{nat_type=2 pk=signed($pb->{id}) "
				. "relay_server=$RELAY_SERVER socket_addr=" . addr($bt) . '}';
			push @bad, "$n $who: $got, expected $exp" if $got ne $exp;
			push @bad, "$n $who: B not closed" unless $bt->closed();
		}

		last if @bad;
	}

	sleep 0.2;      # a sleep: the time in which no second answer may come

	for my $r (@requesters) {
		my ($n, $tc, $w) = @$r;
		push @bad, "$n: a second answer at the TCP requester"
			if norm($tc->recv_msg(0.01)) ne '';
		push @bad, "$n: a second answer at the WebSocket requester"
			if norm($w->recv_msg(0.01)) ne '';
	}

	is(join("\n", @bad), '', 'a TCP and a WebSocket requester for one B: '
		. 'each gets its own answer');
}

# B's answers over WebSocket (PunchHoleSent, RelayResponse, LocalAddr), to
# a requester over TCP and over WebSocket

{
	my @bad;

	for my $n (1 .. 8) {
		my $pb = peer_b($B_IPS[$n + 9]);
		my $a = $n <= 4
			? RustDesk::Client->tcp($MAIN, LocalAddr => '127.0.0.2')
			: ws($WS, LocalAddr => '127.0.0.2');
		my $what = ($n <= 4 ? 'A over TCP' : 'A over WebSocket')
			. ($n % 2 ? ', PunchHoleSent' : ', RelayResponse');

		unless ($a) {
			push @bad, "$n: no upgrade";
			last;
		}

		my $r = $n % 2 ? { punch($pb, $a, addr($a), b_ws => 1) }->{bad}
			: relay($pb, $a, addr($a), "u-bws-$n", b_ws => 1);
		push @bad, "$n ($what): $r" if $r;
		last if @bad;
	}

	is(join("\n", @bad), '', 'B answering over WebSocket: PunchHoleSent, '
		. 'RelayResponse reach A over TCP and over WebSocket');

	# A over TCP at B's IP: FetchLocalAddr, B answers LocalAddr over
	# WebSocket

	my $pb = peer_b('127.0.0.1');
	my $rq = RustDesk::Client->tcp($MAIN, LocalAddr => '127.0.0.1');
	$rq->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1 });
	my ($type, $m) = $pb->{udp}->recv_msg($B_WAIT);
	my $got = '';

	if (($type // '') eq 'fetch_local_addr') {
		my $local = mangle('192.168.7.5', 4000);
		my $bw = ws($WS, path => '/ws/id', LocalAddr => '127.0.0.1');
		if ($bw) {
			$bw->send_msg(local_addr => { socket_addr => $m->{socket_addr},
				local_addr => $local, relay_server => $RELAY_SERVER,
				id => $pb->{id}, version => '1.3.0' });
			$got = norm($rq->recv_msg());
			$got .= ', B not closed' unless $bw->closed();
		}
	} else {
		$got = 'B heard ' . norm($type, $m);
	}

	is($got, "punch_hole_response{is_local=1 pk=signed($pb->{id}) "
		. "relay_server=$RELAY_SERVER socket_addr=192.168.7.5:4000}",
		'LocalAddr over WebSocket: A gets B\'s local address');
}

###############################################################################

# 5. the client address from a trusted proxy (127.0.0.1): X-Real-IP (the
# default rustdesk_real_ip_header; X-Forwarded-For is t/websocket_real_ip.t's
# business); the port stays the connection's

{
	my $pb = peer_b($B_IPS[15]);

	my $w = ws($WS, LocalAddr => '127.0.0.1',
		headers => [ [ 'X-Real-IP', '203.0.113.7' ] ]);
	my %f = $w ? punch($pb, $w, '203.0.113.7:' . $w->sock()->sockport())
		: (bad => 'no upgrade');
	is($f{bad}, '', 'X-Real-IP from a trusted address: B hears that IP, '
		. 'the connection\'s port, and the answer reaches A');

	$w = ws($WS, path => '/ws/id', LocalAddr => '127.0.0.1',
		headers => [ [ 'X-Forwarded-For', '198.51.100.9, 10.0.0.1' ] ]);
	%f = $w ? punch($pb, $w, addr($w)) : (bad => 'no upgrade');
	is($f{bad}, '', 'X-Forwarded-For from a trusted address, header '
		. 'X-Real-IP (the default): ignored');

	$w = ws($WS, LocalAddr => '127.0.0.1',
		headers => [ [ 'X-Forwarded-For', '198.51.100.10' ],
			[ 'X-Real-IP', '203.0.113.8' ] ]);
	%f = $w ? punch($pb, $w, '203.0.113.8:' . $w->sock()->sockport())
		: (bad => 'no upgrade');
	is($f{bad}, '', 'X-Real-IP and X-Forwarded-For: X-Real-IP');

	$w = ws($WS, LocalAddr => '127.0.0.1',
		headers => [ [ 'X-Real-IP', '203.0.113.7' ] ]);
	my $got = '';
	if ($w) {
		$w->send_msg(test_nat_request => { serial => 0 });
		$got = norm($w->recv_msg());
	}
	is($got, 'test_nat_response{port=' . ($w ? $w->sock()->sockport() : 0)
		. '}', 'X-Real-IP: TestNatResponse with the connection\'s port');

	my $w2 = ws($WS, LocalAddr => '127.0.0.1',
		headers => [ [ 'X-Real-IP', 'not-an-address' ] ]);
	%f = $w2 ? punch($pb, $w2, addr($w2)) : (bad => 'no upgrade');
	is($f{bad}, '', 'an invalid X-Real-IP from a trusted address: the '
		. 'socket address');

	# spoofed from an address not trusted (127.0.0.2): nothing changes

	my @bad;

	for my $h ([ 'X-Real-IP', '203.0.113.7' ],
		[ 'X-Forwarded-For', '198.51.100.9, 10.0.0.1' ],
		[ 'X-Real-IP', '127.0.0.1' ])
	{
		my $w = ws($WS, LocalAddr => '127.0.0.2', headers => [ $h ]) or do {
			push @bad, "$h->[0]: $h->[1]: no upgrade"; next;
		};
		my %f = punch($pb, $w, addr($w));
		push @bad, "$h->[0]: $h->[1]: $f{bad}" if $f{bad};
		last if @bad;
	}

	is(join("\n", @bad), '', 'X-Real-IP, X-Forwarded-For from an untrusted '
		. 'address: the socket address');
}

###############################################################################

# 6. through the http {} reverse proxy, plain and TLS: the proxy's
# X-Real-IP ($remote_addr, the address the client bound) is what the
# rendezvous sees, whatever the client itself claimed

{
	my $pb = peer_b($B_IPS[16]);
	my @bad;

	for my $case ([ 'plain', $PROXY, 0, '127.0.0.3' ],
		[ 'TLS', $PROXY_TLS, 1, '127.0.0.4' ])
	{
		my ($name, $port, $ssl, $ip) = @$case;

		for my $h ([], [ [ 'X-Real-IP', '203.0.113.66' ],
			[ 'X-Forwarded-For', '203.0.113.67' ] ])
		{
			my $what = @$h ? "$name, client spoofing" : $name;
			my $w = ws($port, path => '/ws/id', ssl => $ssl, LocalAddr => $ip,
				headers => $h) or do { push @bad, "$what: no upgrade"; next };

			# the proxy's own port is unknown: B must hear the client's IP
			my %f = punch($pb, $w, qr/^\Q$ip\E:[1-9]\d*$/);
			push @bad, "$what: $f{bad}" if $f{bad};
			last if @bad;
		}

		last if @bad;
	}

	is(join("\n", @bad), '', 'through the http proxy, plain and TLS: a full '
		. 'flow, B hears the client\'s IP the proxy named');

	my $w = ws($PROXY_TLS, path => '/ws/id', ssl => 1, LocalAddr => '127.0.0.4');
	my $got = '';
	if ($w) {
		$w->send_msg(online_request => { id => 'ws-asker',
			peers => [ 'ws-nobody-1', $pb->{id} ] });
		$got = norm($w->recv_msg());
	}
	is($got, 'online_response{states=hex:40}',
		'through the TLS http proxy: OnlineRequest');
}

###############################################################################

# 7. WSS by the stream module: upgrade, punch, relay, NAT test

{
	my $pb = peer_b($B_IPS[17]);
	my @bad;

	for my $n (1 .. 6) {
		my $w = ws($WSS, ssl => 1, path => '/ws/id', LocalAddr => '127.0.0.5')
			or do { push @bad, "$n: no upgrade"; next };
		my %f = punch($pb, $w, addr($w));
		push @bad, "$n: $f{bad}" if $f{bad};
		last if @bad;
	}

	is(join("\n", @bad), '', 'WSS (stream TLS): 6 punch flows');

	my $w = ws($WSS, ssl => 1, LocalAddr => '127.0.0.5');
	my $r = $w ? relay($pb, $w, addr($w), 'u-wss-1') : 'no upgrade';
	is($r, '', 'WSS: RequestRelay flow');

	$w = ws($WSS, ssl => 1, LocalAddr => '127.0.0.1',
		headers => [ [ 'X-Real-IP', '203.0.113.9' ] ]);
	my %f = $w ? punch($pb, $w, '203.0.113.9:' . $w->sock()->sockport())
		: (bad => 'no upgrade');
	is($f{bad}, '', 'WSS: X-Real-IP from a trusted address');

	$w = ws($WSS, ssl => 1);
	my $got = '';
	if ($w) {
		$w->send_msg(test_nat_request => { serial => 0 });
		$got = norm($w->recv_msg());
	}
	is($got, 'test_nat_response{port=' . ($w ? $w->sock()->sockport() : 0)
		. '}', 'WSS: TestNatRequest');
	ok($w && $w->closed(), 'WSS: closed after the NAT test');

	my ($plain, $answer) = RustDesk::WebSocket->connect($WSS,
		expect_fail => 1);
	ok(!$plain, 'WSS port: no upgrade without TLS');
}

###############################################################################

# 8. no worker died

{
	my @now = $t->worker_pids();
	is("@now", "@workers", 'no worker died');
}

###############################################################################

# 9. without rustdesk_real_ip_from nobody is trusted

start('');

{
	my $pb = peer_b($B_IPS[18]);
	my @bad;

	for my $h ([ 'X-Real-IP', '203.0.113.7' ],
		[ 'X-Forwarded-For', '198.51.100.9, 10.0.0.1' ])
	{
		my $w = ws($WS, LocalAddr => '127.0.0.1', headers => [ $h ]) or do {
			push @bad, "$h->[0]: no upgrade"; next;
		};
		my %f = punch($pb, $w, addr($w));
		push @bad, "$h->[0]: $f{bad}" if $f{bad};
		last if @bad;
	}

	is(join("\n", @bad), '', 'no rustdesk_real_ip_from: headers from '
		. '127.0.0.1 ignored');

	# the http proxy's X-Real-IP is not believed either: B hears the
	# proxy's address

	my $w = ws($PROXY, path => '/ws/id', LocalAddr => '127.0.0.3');
	my %f = $w ? punch($pb, $w, qr/^127\.0\.0\.1:[1-9]\d*$/)
		: (bad => 'no upgrade');
	is($f{bad}, '', 'no rustdesk_real_ip_from: the http proxy\'s X-Real-IP '
		. 'ignored, the proxy\'s address used');
}

###############################################################################

# (Re)starts nginx with the real IP directive given.

sub start {
	my ($real_ip) = @_;

	$t->restart(stream_conf([
		'rustdesk_key_dir %%TESTDIR%%/keys;',
		'rustdesk_relay_servers 127.0.0.1:%%PORT_2%%;',
		$real_ip,
		tls(),
	], srv_rendezvous(1), srv_ws_rendezvous(3),
		srv_ws_rendezvous(4, ssl => 1), srv_blank(2))

		. http_conf([], map { srv_ws_proxy($_->[0], path => '/ws/id',
			to => 3, reuseport => 0, ssl => $_->[1]) } [ 5, 0 ], [ 6, 1 ]));
}

# An upgraded WebSocket connection, undef (with a note) if the upgrade
# failed.

sub ws {
	my ($port, %o) = @_;
	my $w = eval { RustDesk::WebSocket->connect($port, %o) };
	note("WebSocket to $port: $@") unless $w;
	return $w;
}

# A new peer B registered over UDP from a new socket at $ip.

sub peer_b {
	my ($ip) = @_;
	return RustDesk::Client->udp_peer($MAIN, sprintf('ws-b-%03d', ++$nb),
		LocalAddr => $ip, keys => \%PK);
}

# A full punch with A on the connection $w (WebSocket, or TCP): B must
# hear PunchHole with A's address $a ("ip:port", or a pattern), answers
# with PunchHoleSent on a new TCP connection from its IP (WebSocket with
# b_ws => 1); A must get the
# PunchHoleResponse with B's address and signed key, B's connection must
# close.  Returns (bad => what differed, '' if nothing; bt => the address
# of B's answering connection).

sub punch {
	my ($pb, $w, $a, %o) = @_;
	my @bad;

	$w->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $pb->{udp}->recv_msg($B_WAIT);
	my $got = norm($type, $m);
	my ($seen) = $got =~ /socket_addr=(\S+)\}$/;
	(my $gen = $got) =~ s/socket_addr=\S+\}$/socket_addr=A}/;
	my $exp = "punch_hole{nat_type=1 relay_server=$RELAY_SERVER "
		. "socket_addr=A}";

	my $a_ok = defined $seen && (ref $a ? $seen =~ $a : $seen eq $a);

	return (bad => "PunchHole: $got, expected $exp with A at $a", bt => '')
		if $gen ne $exp || !$a_ok;

	my $bt = answerer($pb, $o{b_ws})
		or return (bad => 'B: no upgrade', bt => '');
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
		id => $pb->{id}, relay_server => $RELAY_SERVER, nat_type => 2,
		version => '1.3.0' });

	$got = norm($w->recv_msg());
	$exp = "punch_hole_response{nat_type=2 pk=signed($pb->{id}) "
		. "relay_server=$RELAY_SERVER socket_addr=" . addr($bt) . '}';

	push @bad, "PunchHoleResponse: $got, expected $exp" if $got ne $exp;
	push @bad, 'B not closed' unless $bt->closed();

	return (bad => join('; ', @bad), bt => addr($bt));
}

# A relay request from A on $w: B must hear RequestRelay with A's address
# $a and the fields kept; B's RelayResponse (new TCP connection, or
# WebSocket with b_ws => 1) must reach
# A without the address, with B's signed key in place of its id.
# Returns what differed, '' if nothing.

sub relay {
	my ($pb, $w, $a, $uuid, %o) = @_;

	$w->send_msg(request_relay => { id => $pb->{id}, uuid => $uuid,
		relay_server => 'r.example:21117', secure => 1, licence_key => $key,
		conn_type => 1 });

	my ($type, $m) = $pb->{udp}->recv_msg($B_WAIT);
	my $got = norm($type, $m);
	my $exp = "request_relay{conn_type=1 id=$pb->{id} licence_key=$key "
		. "relay_server=r.example:21117 secure=1 socket_addr=$a uuid=$uuid}";

	return "RequestRelay: $got, expected $exp" if $got ne $exp;

	my $bt = answerer($pb, $o{b_ws}) or return 'B: no upgrade';
	$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
		uuid => $uuid, relay_server => 'r.example:21117', id => $pb->{id},
		version => '1.3.0' });

	$got = norm($w->recv_msg());
	$exp = "relay_response{pk=signed($pb->{id}) relay_server=r.example:21117 "
		. "uuid=$uuid version=1.3.0}";

	return "RelayResponse: $got, expected $exp" if $got ne $exp;
	return 'B not closed' unless $bt->closed();
	return '';
}

# B's connection for its answer: TCP to the main port, or WebSocket.

sub answerer {
	my ($pb, $ws) = @_;
	return ws($WS, path => '/ws/id', LocalAddr => $pb->{ip}) if $ws;
	return RustDesk::Client->tcp($MAIN, LocalAddr => $pb->{ip});
}


# (type, fields) as text (RustDesk::Client::msg_norm): addresses decoded,
# signed keys checked against the keys the Bs registered; a WebSocket
# close with its payload in hex.

sub norm {
	my ($type, $m) = @_;
	return "close{" . unpack('H*', $m // '') . '}' if ($type // '') eq 'close';
	return msg_norm($key, \%PK, $type, $m);
}

###############################################################################
