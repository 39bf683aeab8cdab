#!/usr/bin/perl

# The relay server (hbbr) over WebSocket (PROTOCOL.md sections 2 and 7,
# `rustdesk_relay websocket;`): the first message of a WebSocket client is
# a binary message holding the RequestRelay; once paired, a WebSocket side
# exchanges binary messages and a TCP side stays framed (each TCP frame's
# payload is one binary message, each binary message one TCP frame, empty
# ones dropped).
#
# 1. 36 pairs WS<->WS, WS<->TCP, TCP<->WS (first arrival first), messages
#    each way of every size up to 1 MiB, checked byte for byte; some pairs
#    split across the two workers
# 2. a fragmented message with a ping in between
# 3. closing: a close frame, a TCP side closing, either side
# 4. WSS by the stream module's own TLS: 24 pairs with TCP and WSS sides,
#    some split across workers (a TLS side goes through a socketpair)
# 5. through an http {} reverse proxy of the same nginx, with the client
#    address named by X-Real-IP from a trusted proxy only: the blocklist
#    sees the named address; headers from untrusted clients change nothing
# 6. bad input on the WebSocket relay port

use warnings;
use strict;

use Test::More;
use Digest::SHA qw/ sha256_hex /;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ frame unframe encode_msg /;
use RustDesk::WebSocket;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->modules('relay')->has();

plan(skip_all => 'no IO::Socket::SSL') unless eval { require IO::Socket::SSL };
plan(skip_all => 'no openssl') unless `openssl version 2>/dev/null`;

$t->plan(47);

my $d = $t->testdir();

make_cert($t);

$t->write_file('blocklist.txt', "127.0.0.2\n127.0.0.5 spoofer\n");

# port 0: the relay; 1: its WebSocket port; 2: WSS (stream TLS); 3: an
# http {} reverse proxy to port 1

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_relay_single_bandwidth 0;',
	'rustdesk_relay_total_bandwidth 0;',
	'rustdesk_relay_blocklist %%TESTDIR%%/blocklist.txt;',
	'rustdesk_real_ip_from 127.0.0.1;',
	tls(),
], srv_relay(0), srv_relay(1, how => 'websocket'),
	srv_relay(2, how => 'websocket', ssl => 1))

	. http_conf([ 'map $http_upgrade $connection_upgrade {
        default  upgrade;
        \'\'       close;
    }' ], srv_ws_proxy(3, path => '/ws/relay', to => 1,
		connection => '$connection_upgrade',
		directives => [ 'proxy_read_timeout 120s;' ])));

$t->run();

my $started = time();
my %PORT = (tcp => port(0), ws => port(1), wss => port(2), proxy => port(3));

srand(20240919);

my $POOL = join('', map { pack('N', int(rand(4294967296))) } 1 .. (1 << 19));

my @workers = $t->worker_pids();

###############################################################################

# 1. 36 pairs, in three kinds (the first named arrives first and waits),
# every side sending a RequestRelay and its first two messages in one
# write, then messages of every size (the WebSocket and TCP frame header
# boundaries, 200 KiB, 1 MiB) with empty ones in between that must not
# arrive

{
	my @kinds = ([ 'ws', 'ws' ], [ 'ws', 'tcp' ], [ 'tcp', 'ws' ]);
	my @ips = ('127.0.0.1', '127.0.0.3', '127.0.0.4');

	my @pairs = map {
		my ($ka, $kb) = @{$kinds[$_ % 3]};
		my $uuid = sprintf('ws-%s-%s-%02d', $ka, $kb, $_);
		{ uuid => $uuid,
			a => { kind => $ka, ip => $ips[$_ % 3] },
			b => { kind => $kb, ip => $ips[($_ + 1) % 3] },
			ab => messages("$uuid A", 1), ba => messages("$uuid B", 1) }
	} 0 .. 35;

	my $t0 = time();
	open_pairs(@pairs);
	is(exchange(\@pairs, 40), '',
		'ws pairs: every message once, in order, byte for byte, '
		. 'empty ones dropped');
	note(sprintf('36 pairs: %.1f s', time() - $t0));

	my @uuids = map { $_->{uuid} } @pairs;
	my $log = $t->read_file('error.log');

	is(join(' ', grep {
		$t->log_count(qr/new relay request "\Q$_\E"/, $log) != 1
			|| $t->log_count(qr/relay "\Q$_\E" paired/, $log) != 1
	} @uuids), '', 'ws pairs: "new relay request" and "paired" once each');

	my ($cross, $split) = cross_split(\@pairs, $log);
	diag("ws pairs: $cross \"paired with a connection from worker\" lines, "
		. "$split pairs accepted on different workers");
	ok($cross > 0, "ws pairs: some split across workers ($cross)");
	is($cross, $split, 'ws pairs: a "from worker" line for each pair whose '
		. 'sides were accepted by different workers');

	close_ends(@pairs);
	is(join(' ', grep {
		!$t->wait_log(qr/relay "\Q$_\E" closed/, 1, 3)
	} @uuids), '', 'ws pairs: "closed" logged for each');
}

###############################################################################

# 2. a message in 3 fragments (1000 bytes, 70000, 5) with a ping after the
# first: the pong comes back to its sender at once, the partner gets
# nothing until the last fragment, then one message; a WebSocket and a
# TCP partner

for my $kb (qw/ tcp ws /) {
	my $uuid = "frag-$kb";
	my $p = { uuid => $uuid, a => { kind => 'ws' }, b => { kind => $kb },
		ab => [ 'A hello' ], ba => [ 'B hello' ] };

	open_pairs($p);
	my ($a, $b) = @$p{qw/ A B /};
	my $err = exchange([ $p ], 5);

	my @part = (payload("$uuid 1", 1000), payload("$uuid 2", 70000),
		payload("$uuid 3", 5));

	push @{$a->{queue}}, ws_frame(0x2, $part[0], fin => 0),
		ws_frame(0x9, "ping $uuid");
	pump([ $a, $b ], sub { @{$a->{ctrl}} }, 3);
	pump([ $a, $b ], sub { 0 }, 0.3);

	my $pong = join(' ', map { sprintf('%x:%s', @$_) } @{$a->{ctrl}});
	my $early = @{$b->{msgs}} - 1;

	push @{$a->{queue}}, ws_frame(0x0, $part[1], fin => 0),
		ws_frame(0x0, $part[2], fin => 1), ws_frame(0x2, 'A after');
	push @{$b->{queue}}, encode($b, 'B after');
	$b->{expect} += 2;
	$a->{expect} += 1;

	pump([ $a, $b ], sub { done($a) && done($b) }, 5);
	pump([ $a, $b ], sub { 0 }, 0.1);

	is("$err|$pong|$early", "|a:ping $uuid|0",
		"fragmented, to $kb: the ping answered with a pong at once, "
		. 'nothing forwarded before the last fragment');

	is(join(' ', check_end($b, [ 'A hello', join('', @part), 'A after' ]),
		check_end($a, [ 'B hello', 'B after' ], [ "a:ping $uuid" ])),
		'', "fragmented, to $kb: one message, then the next");

	close_ends($p);
}

###############################################################################

# 3. closing

{
	# a WebSocket side's close frame: echoed, closed, its partner (TCP,
	# WebSocket) sees the end

	for my $kb (qw/ tcp ws /) {
		my $uuid = "close-frame-$kb";
		my $p = { uuid => $uuid, a => { kind => 'ws' }, b => { kind => $kb },
			ab => [ 'A hello' ], ba => [ 'B hello' ] };

		open_pairs($p);
		my ($a, $b) = @$p{qw/ A B /};
		my $err = exchange([ $p ], 5);

		push @{$a->{queue}}, ws_frame(0x8, pack('n', 1000) . 'bye');
		pump([ $a, $b ], sub { $a->{eof} && $b->{eof} }, 3);

		is(join('|', $err, end_state($a), end_state($b),
			scalar(@{$b->{msgs}})), '|ended|ended|1',
			"close frame, partner $kb: both connections end");
		is(close_code($a), 1000,
			"close frame, partner $kb: echoed with its code (RFC 6455 "
			. '5.5.1)');
		ok($t->wait_log(qr/relay "\Q$uuid\E" closed/, 1, 3),
			"close frame, partner $kb: closed logged");
		close_ends($p);
	}

	# a TCP side sends a last frame and closes: its WebSocket partner gets
	# the message, then the end; a WebSocket side's connection closed
	# without a close frame: its TCP partner sees the end

	my $p = { uuid => 'close-tcp', a => { kind => 'tcp' },
		b => { kind => 'ws' }, ab => [ 'A hello' ], ba => [ 'B hello' ] };
	my $q = { uuid => 'close-ws', a => { kind => 'tcp' },
		b => { kind => 'ws' }, ab => [ 'A hello' ], ba => [ 'B hello' ] };

	open_pairs($p, $q);
	my $err = exchange([ $p, $q ], 5);

	my $last = payload('close-tcp last', 100000);
	$p->{A}{sock}->blocking(1);
	$p->{A}{sock}->syswrite(frame($last));
	$p->{A}{sock}->close();
	$p->{A}{sock} = undef;

	$q->{B}{sock}->close();
	$q->{B}{sock} = undef;

	my ($pb, $qa) = ($p->{B}, $q->{A});
	pump([ $pb, $qa ], sub { $pb->{eof} && $qa->{eof} }, 3);

	# a close frame before the end or not
	$pb->{ctrl} = [ grep { $_->[0] != 0x8 } @{$pb->{ctrl}} ];

	is(join('|', $err, end_state($pb), join(' ', check_end($pb,
		[ 'A hello', $last ]))), '|ended|',
		'TCP side closes: its WebSocket partner gets its last message '
		. '(100000 bytes), then the end');
	is(end_state($qa), 'ended',
		'WebSocket side closes without a close frame: its TCP partner '
		. 'sees the end');
	ok($t->wait_log(qr/relay "close-(?:tcp|ws)" closed/, 2, 3),
		'closed logged for both');
}

###############################################################################

# 4. WSS: the stream module's TLS in front of the WebSocket relay; 24
# pairs WSS<->TCP, TCP<->WSS, WSS<->WSS; a second arrival over TLS in the
# other worker is carried through a socketpair

{
	my @kinds = ([ 'wss', 'tcp' ], [ 'tcp', 'wss' ], [ 'wss', 'wss' ]);

	my @pairs = map {
		my ($ka, $kb) = @{$kinds[$_ % 3]};
		my $uuid = sprintf('tls-%s-%s-%02d', $ka, $kb, $_);
		{ uuid => $uuid,
			a => { kind => $ka, ip => '127.0.0.3' },
			b => { kind => $kb, ip => '127.0.0.4' },
			ab => messages("$uuid A", $_ < 6),
			ba => messages("$uuid B", $_ < 6) }
	} 0 .. 23;

	my $t0 = time();
	open_pairs(@pairs);
	is(exchange(\@pairs, 30), '',
		'wss pairs: every message once, in order, byte for byte');
	note(sprintf('24 TLS pairs: %.1f s', time() - $t0));

	my $log = $t->read_file('error.log');

	is(join(' ', map { $_->{uuid} } grep {
		$t->log_count(qr/relay "\Q$_->{uuid}\E" paired/, $log) != 1
	} @pairs), '', 'wss pairs: "paired" once each');

	my @tls_second = grep { $_->{b}{kind} eq 'wss' } @pairs;
	my ($cross, $split) = cross_split(\@tls_second, $log);
	diag("wss pairs, TLS second arrival: $cross \"from worker\" lines, "
		. "$split split");
	ok($cross > 0, "wss pairs: a TLS second arrival in the other worker "
		. "pairs ($cross)");

	($cross, $split) = cross_split(\@pairs, $log);
	is($cross, $split, 'wss pairs: a "from worker" line for each split '
		. 'pair');

	close_ends(@pairs);
	is(join(' ', map { $_->{uuid} } grep {
		!$t->wait_log(qr/relay "\Q$_->{uuid}\E" closed/, 1, 3)
	} @pairs), '', 'wss pairs: "closed" logged for each');
}

###############################################################################

# 5. through the http {} proxy (/ws/relay, X-Real-IP $remote_addr, from
# 127.0.0.1, which is trusted); the blocklist holds 127.0.0.2 and
# 127.0.0.5

{
	my @pairs = (
		[ { kind => 'proxy', ip => '127.0.0.3' }, { kind => 'tcp' } ],
		[ { kind => 'tcp' }, { kind => 'proxy', ip => '127.0.0.4' } ],
		[ { kind => 'proxy', ip => '127.0.0.3' },
			{ kind => 'proxy', ip => '127.0.0.4' } ],
		[ { kind => 'ws', ip => '127.0.0.3' },
			{ kind => 'proxy', ip => '127.0.0.4' } ],
	);

	@pairs = map { {
		uuid => "proxy-$_", a => $pairs[$_][0], b => $pairs[$_][1],
		ab => messages("proxy-$_ A", 1), ba => messages("proxy-$_ B", 1),
	} } 0 .. $#pairs;

	open_pairs(@pairs);
	is(exchange(\@pairs, 20), '',
		'proxy: pairs through it, messages byte for byte (up to 1 MiB)');
	close_ends(@pairs);

	# 127.0.0.2 through the proxy: refused after its RequestRelay; the
	# waiter it named stays and pairs with 127.0.0.3 through the proxy

	my $blocked = qr/rustdesk: 127\.0\.0\.2 blocked/;
	my $n = $t->log_count($blocked);

	my $w = { uuid => 'block-1', a => { kind => 'tcp' },
		b => { kind => 'proxy', ip => '127.0.0.3' },
		ab => [ 'waiter' ], ba => [ 'good' ] };
	open_pairs($w, 'A');

	like(refused('proxy', 'block-1', LocalAddr => '127.0.0.2'),
		qr/^(closed|refused)/, 'proxy: 127.0.0.2 through it refused');
	is($t->wait_log($blocked, $n + 1, 3), $n + 1,
		'proxy: "127.0.0.2 blocked" logged');

	my $a = $w->{A};
	pump([ $a ], sub { $a->{eof} }, 0.3);
	is(end_state($a) . ' ' . scalar(@{$a->{msgs}}), 'open 0',
		'proxy: the waiter got nothing from the refused client');

	open_pairs($w, 'B');
	is(exchange([ $w ], 5), '',
		'proxy: 127.0.0.3 through it pairs with the waiter');
	close_ends($w);

	# headers of its own through the proxy change nothing: nginx sets
	# X-Real-IP, X-Forwarded-For comes second

	$n = $t->log_count($blocked);
	like(refused('proxy', 'block-2', LocalAddr => '127.0.0.2',
		headers => [ [ 'X-Real-IP', '127.0.0.9' ],
		[ 'X-Forwarded-For', '127.0.0.9' ] ]),
		qr/^(closed|refused)/,
		'proxy: 127.0.0.2 naming itself 127.0.0.9 refused');
	is($t->wait_log($blocked, $n + 1, 3), $n + 1, 'proxy: logged');

	# directly from 127.0.0.1 (trusted), naming 127.0.0.2: X-Real-IP
	# (X-Forwarded-For is t/websocket_real_ip.t's business)

	$n = $t->log_count($blocked);
	like(refused('ws', 'block-3',
		headers => [ [ 'X-Real-IP', '127.0.0.2' ] ]),
		qr/^(closed|refused)/,
		'trusted X-Real-IP: 127.0.0.2 refused');
	is($t->wait_log($blocked, $n + 1, 3), $n + 1,
		'trusted X-Real-IP: "127.0.0.2 blocked" logged');

	$n = $t->log_count($blocked);
	my $x = { uuid => 'real-ip-first', a => { kind => 'tcp' },
		b => { kind => 'ws', headers => [ [ 'X-Real-IP', '127.0.0.3' ],
			[ 'X-Forwarded-For', '127.0.0.2' ] ] },
		ab => [ 'A' ], ba => [ 'B' ] };

	# from 127.0.0.4 (untrusted) naming 127.0.0.2: not refused

	my $y = { uuid => 'untrusted-1', a => { kind => 'tcp' },
		b => { kind => 'ws', ip => '127.0.0.4',
			headers => [ [ 'X-Real-IP', '127.0.0.2' ],
			[ 'X-Forwarded-For', '127.0.0.2' ] ] },
		ab => [ 'A' ], ba => [ 'B' ] };

	open_pairs($x, $y);
	is(exchange([ $x ], 5), '',
		'trusted: X-Real-IP 127.0.0.3 wins over X-Forwarded-For 127.0.0.2');
	is(exchange([ $y ], 5), '',
		'untrusted 127.0.0.4 naming 127.0.0.2: pairs (the header ignored)');
	sleep 0.2;      # a sleep: what is checked is that nothing comes
	is($t->log_count($blocked), $n, 'neither logged as blocked');
	close_ends($x, $y);

	# from 127.0.0.5 (untrusted, blocked) naming 127.0.0.9 (not blocked)

	my $spoof = qr/rustdesk: 127\.0\.0\.5 blocked/;
	$n = $t->log_count($spoof);
	like(refused('ws', 'spoof-1', LocalAddr => '127.0.0.5',
		headers => [ [ 'X-Real-IP', '127.0.0.9' ] ]),
		qr/^(closed|refused)/,
		'untrusted 127.0.0.5 naming 127.0.0.9: refused');
	is($t->wait_log($spoof, $n + 1, 3) . ' '
		. $t->log_count(qr/127\.0\.0\.9 blocked/), ($n + 1) . ' 0',
		'untrusted 127.0.0.5: "127.0.0.5 blocked" logged');
}

###############################################################################

# 6. bad input on the WebSocket relay port: closed promptly (the request
# timeout is 30 s), with the close code for a protocol error, never paired

{
	my $req = encode_msg(request_relay => { uuid => 'bad-1' });

	is(bad_input('bad-1', RustDesk::WebSocket->frame(0x2, $req,
		masked => 0)), 'ended 1002', 'unmasked frame: 1002, closed');

	$req = encode_msg(request_relay => { uuid => 'bad-2' });
	is(bad_input('bad-2', RustDesk::WebSocket->frame(0x1, $req)),
		'ended 1003', 'text frame: 1003, closed');

	like(bad_input('bad-3', ws_frame(0x2, encode_msg(
		test_nat_request => { serial => 3 })) . ws_frame(0x2,
		encode_msg(request_relay => { uuid => 'bad-3' }))),
		qr/^ended\b/, 'first message not a RequestRelay: closed');

	is(bad_input('bad-4', RustDesk::WebSocket->frame(0x2, '',
		len => 2 ** 40)), 'ended 1009', '2^40 bytes announced: 1009, closed');

	like(bad_input('bad-5', ws_frame(0x2,
		encode_msg(request_relay => { uuid => '' }))),
		qr/^ended\b/, 'RequestRelay without uuid: closed');

	is($t->log_count(qr/new relay request "bad-\d"/), 0,
		'bad input: nothing waits');

	# a paired WebSocket side sending an unmasked frame: 1002, and the
	# pair ends

	my $p = { uuid => 'bad-paired', a => { kind => 'tcp' },
		b => { kind => 'ws' }, ab => [ 'A' ], ba => [ 'B' ] };
	open_pairs($p);
	my $err = exchange([ $p ], 5);
	my ($a, $b) = @$p{qw/ A B /};

	push @{$b->{queue}}, RustDesk::WebSocket->frame(0x2, 'unmasked',
		masked => 0);
	pump([ $a, $b ], sub { $a->{eof} && $b->{eof} }, 3);

	is(join('|', $err, end_state($b), end_state($a),
		scalar(@{$a->{msgs}})), '|ended|ended|1',
		'paired, unmasked frame: both sides end, nothing forwarded');
	is(close_code($b), 1002, 'paired, unmasked frame: close frame 1002');
	close_ends($p);

	my @now = $t->worker_pids();
	is("@now", "@workers", 'no worker died');

	$p = { uuid => 'after-bad', a => { kind => 'ws' }, b => { kind => 'ws' },
		ab => messages('after-bad A', 0), ba => messages('after-bad B', 0) };
	open_pairs($p);
	is(exchange([ $p ], 10), '', 'a pair after all that');
	close_ends($p);
}

note(sprintf('runtime %.1f s', time() - $started));

###############################################################################

# Payloads: $len bytes starting with the tag, the rest from a random pool,
# so that a message in the wrong place shows.

sub payload {
	my ($tag, $len) = @_;
	my $off = int(rand(length($POOL) - $len));
	return substr("$tag;" . substr($POOL, $off, $len), 0, $len);
}

# The messages of one side: the first two (small) go with the request;
# empty ones in between must be dropped; $big adds 200 KiB and 1 MiB.

sub messages {
	my ($tag, $big) = @_;

	my @m = ("$tag: first", 'x', '', map { payload($tag, $_) }
		63, 64, 125, 126, 127, 300, 16383, 16384);
	push @m, '', payload($tag, 65535), payload($tag, 65536),
		payload($tag, 70000);
	push @m, payload($tag, 200 * 1024), '', payload($tag, 1 << 20) if $big;
	push @m, "$tag: last";

	return \@m;
}

sub ws_frame {
	my ($op, $payload, %o) = @_;
	return RustDesk::WebSocket->frame($op, $payload, %o);
}

sub encode {
	my ($e, $payload) = @_;
	return $e->{kind} eq 'tcp' ? frame($payload) : ws_frame(0x2, $payload);
}

# A message as the checks compare it: length and content (SHA-256 for
# the longer ones).
sub digest {
	my ($m) = @_;
	return length($m) . ':'
		. (length $m <= 24 ? $m : substr(sha256_hex($m), 0, 16));
}


# A side: { kind => tcp | ws | wss | proxy, ip => source address,
# headers => upgrade request headers } connected, its RequestRelay and
# first messages sent in one write.  Returns an end for pump().

sub open_side {
	my ($spec, $uuid, @first) = @_;
	my $req = encode_msg(request_relay => { uuid => $uuid });
	my $ip = $spec->{ip} // '127.0.0.1';
	my ($sock, $in);

	if ($spec->{kind} eq 'tcp') {
		$sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$PORT{tcp}",
			LocalAddr => $ip, Proto => 'tcp')
			or die "connect: $!\n";
		$sock->syswrite(join('', map { frame($_) } $req, @first));
		$in = '';

	} else {
		my $w = RustDesk::WebSocket->connect($PORT{$spec->{kind}},
			LocalAddr => $ip, ssl => $spec->{kind} eq 'wss',
			path => $spec->{kind} eq 'proxy' ? '/ws/relay' : '/',
			headers => $spec->{headers} // []);
		$w->send_raw(join('', map { ws_frame(0x2, $_) } $req, @first));
		($sock, $in) = ($w->sock(), $w->{in});
	}

	$sock->blocking(0);

	return { kind => $spec->{kind} eq 'tcp' ? 'tcp' : 'ws', sock => $sock,
		addr => $sock->sockhost() . ':' . $sock->sockport(),
		in => $in, out => '', queue => [], msgs => [], ctrl => [],
		bad => [], expect => 0, name => "$uuid $spec->{kind}" };
}

# Pairs: A ({a}) connects and waits ("new relay request" logged), then B.
# With 'A' or 'B', only that side.
sub open_pairs {
	my $only = ref $_[-1] ? '' : pop;
	my @pairs = @_;

	unless ($only eq 'B') {
		for my $p (@pairs) {
			$p->{A} = open_side($p->{a}, $p->{uuid},
				grep { defined } @{$p->{ab}}[0 .. 1]);
		}

		for my $p (@pairs) {
			$t->wait_log(qr/new relay request "\Q$p->{uuid}\E"/, 1, 5)
				or diag("$p->{uuid}: first side not waiting");
		}
	}

	return if $only eq 'A';

	for my $p (@pairs) {
		$p->{B} = open_side($p->{b}, $p->{uuid},
			grep { defined } @{$p->{ba}}[0 .. 1]);
	}
}

# The rest of the messages both ways; returns the errors, '' if every
# side got exactly what the other sent, non-empty messages only.
sub exchange {
	my ($pairs, $timeout) = @_;
	my @ends;

	for my $p (@$pairs) {
		my ($a, $b) = @$p{qw/ A B /};

		my @ab = @{$p->{ab}};
		my @ba = @{$p->{ba}};
		push @{$a->{queue}}, map { encode($a, $_) } @ab[2 .. $#ab];
		push @{$b->{queue}}, map { encode($b, $_) } @ba[2 .. $#ba];
		$a->{expect} += grep { length } @ba;
		$b->{expect} += grep { length } @ab;

		push @ends, $a, $b;
	}

	pump(\@ends, sub { !grep { !done($_) } @ends }, $timeout);
	pump(\@ends, sub { 0 }, 0.05);

	my @err;

	for my $p (@$pairs) {
		push @err, check_end($p->{A}, $p->{ba});
		push @err, check_end($p->{B}, $p->{ab});
	}

	return join("\n", @err);
}

sub done {
	my ($e) = @_;
	return $e->{eof} || @{$e->{msgs}} >= $e->{expect};
}

# What an end got, against the messages its partner sent (empty ones
# left out) and the control frames expected ("opcode:payload", opcode
# in hex): the differences, or ().
sub check_end {
	my ($e, $sent, $ctrl) = @_;
	my @want = map { digest($_) } grep { length } @$sent;
	my @got = @{$e->{msgs}};
	my @err;

	push @err, @{$e->{bad}};
	push @err, 'got ' . scalar(@got) . ' messages of ' . scalar(@want)
		. ($e->{eof} ? " ($e->{eof})" : '') if @got != @want;

	for my $i (0 .. $#want) {
		next if defined $got[$i] && $got[$i] eq $want[$i];
		push @err, "message $i: $want[$i] sent, "
			. ($got[$i] // 'nothing') . ' got';
		last;
	}

	my @c = map { sprintf('%x:%s', @$_) } @{$e->{ctrl}};
	my @wc = @{$ctrl // []};

	push @err, 'control frames: ' . join(', ', @c)
		if join("\n", @c) ne join("\n", @wc);

	return map { "$e->{name}: $_" } @err;
}

sub end_state {
	my ($e) = @_;
	return $e->{eof} ? 'ended' : 'open';
}

# The code of the close frame an end got, 'none' without one.
sub close_code {
	my ($e) = @_;
	my ($c) = grep { $_->[0] == 0x8 } @{$e->{ctrl}};
	return 'none' unless $c;
	return length $c->[1] >= 2 ? unpack('n', $c->[1]) : 'empty';
}

sub close_ends {
	my @pairs = @_;

	for my $p (@pairs) {
		for my $e (grep { defined } @$p{qw/ A B /}) {
			$e->{sock}->close() if $e->{sock};
			$e->{sock} = undef;
		}
	}
}


# Moves bytes: writes what the ends have queued, reads and parses what
# comes (frames for a TCP end, WebSocket frames for the others) until
# $done->() or the timeout.
sub pump {
	my ($ends, $done, $timeout) = @_;
	my $end = time() + $timeout;

	for (;;) {
		my $more = 0;

		for my $e (@$ends) {
			write_end($e);
			$more += read_end($e);
		}

		return 1 if $done->();
		return 0 if time() >= $end;

		my ($rin, $win) = ('', '');

		for my $e (@$ends) {
			next unless $e->{sock};
			my $fd = fileno($e->{sock});
			vec($rin, $fd, 1) = 1 unless $e->{eof};
			vec($win, $fd, 1) = 1
				if !$e->{werr} && (length $e->{out} || @{$e->{queue}});
		}

		select($rin, $win, undef, $more ? 0 : 0.02);
	}
}

sub write_end {
	my ($e) = @_;
	return if !$e->{sock} || $e->{werr};

	for (1 .. 32) {
		$e->{out} = shift @{$e->{queue}}
			if !length $e->{out} && @{$e->{queue}};
		return unless length $e->{out};

		my $n = $e->{sock}->syswrite($e->{out}, 65536);

		unless (defined $n) {
			return if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
			$e->{werr} = "write: $!";
			return;
		}

		substr($e->{out}, 0, $n) = '';
	}
}

# Reads what is there: 1 if there may be more (a TLS end stops after 64
# records).
sub read_end {
	my ($e) = @_;
	return 0 if !$e->{sock} || $e->{eof};

	for (1 .. 64) {
		my $n = $e->{sock}->sysread(my $buf, 1 << 20);

		if (!defined $n) {
			last if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
			$e->{eof} = "read: $!";
			last;
		}

		if ($n == 0) {
			$e->{eof} = 'eof';
			last;
		}

		$e->{in} .= $buf;
		parse_end($e);
		return 1 if $_ == 64;
	}

	parse_end($e);
	return 0;
}

sub parse_end {
	my ($e) = @_;

	if ($e->{kind} eq 'tcp') {
		push @{$e->{msgs}}, map { digest($_) } unframe(\$e->{in});
		return;
	}

	# server frames: unmasked, no RSV bits, binary data only; control
	# frames may come between fragments

	my $in = \$e->{in};

	for (;;) {
		last if length $$in < 2;

		my ($b0, $b1) = unpack('CC', $$in);
		my ($fin, $rsv, $op) = ($b0 >> 7, ($b0 >> 4) & 7, $b0 & 0xF);
		my $len = $b1 & 0x7F;
		my $h = 2;

		if ($len == 126) {
			last if length $$in < 4;
			$len = unpack('n', substr($$in, 2, 2));
			$h = 4;
		} elsif ($len == 127) {
			last if length $$in < 10;
			$len = unpack('Q>', substr($$in, 2, 8));
			$h = 10;
		}

		if ($b1 & 0x80) {
			push @{$e->{bad}}, 'masked server frame';
			$h += 4;
		}

		last if length $$in < $h + $len;

		my $payload = substr($$in, $h, $len);
		substr($$in, 0, $h + $len) = '';

		push @{$e->{bad}}, "RSV bits $rsv" if $rsv;

		if ($op >= 0x8) {
			push @{$e->{bad}}, "fragmented control frame $op" unless $fin;
			push @{$e->{ctrl}}, [ $op, $payload ];
			next;
		}

		if ($op == 0) {
			unless (defined $e->{frag}) {
				push @{$e->{bad}}, 'continuation without a start';
				next;
			}
			$e->{frag} .= $payload;

		} else {
			push @{$e->{bad}}, "opcode $op" if $op != 0x2;
			push @{$e->{bad}}, 'a message inside a fragmented one'
				if defined $e->{frag};
			$e->{frag} = $payload;
		}

		if ($fin) {
			push @{$e->{msgs}}, digest($e->{frag});
			undef $e->{frag};
		}
	}
}


# Pairs split across workers: the "paired with a connection from
# worker" lines of these pairs, and the pairs whose sides the log shows
# accepted by different workers.
sub cross_split {
	my ($pairs, $log) = @_;
	my %wk = $t->client_workers();
	my ($cross, $split) = (0, 0);

	for my $p (@$pairs) {
		$cross += $t->log_count(
			qr/relay "\Q$p->{uuid}\E" paired with a connection from worker/,
			$log);

		my ($wa, $wb) = ($wk{$p->{A}{addr}} // 0, $wk{$p->{B}{addr}} // 0);
		$split++ if $wa && $wb && $wa != $wb;
	}

	return ($cross, $split);
}

# A WebSocket client that should be refused (its address blocked):
# 'refused' (no upgrade), 'closed' (closed after its RequestRelay, having
# got no message), or what went wrong.
sub refused {
	my ($kind, $uuid, %o) = @_;

	my ($w, $answer) = eval {
		RustDesk::WebSocket->connect($PORT{$kind}, %o, expect_fail => 1,
			path => $kind eq 'proxy' ? '/ws/relay' : '/')
	};

	return "refused ($@)" if $@;
	return "refused ($answer)" unless $w;

	$w->send_raw(ws_frame(0x2, encode_msg(request_relay => { uuid => $uuid }))
		. ws_frame(0x2, "from $uuid"));
	$w->sock()->blocking(0);

	my $e = { kind => 'ws', sock => $w->sock(), in => $w->{in}, out => '',
		queue => [], msgs => [], ctrl => [], bad => [] };

	pump([ $e ], sub { $e->{eof} }, 3);
	$w->sock()->close();

	return 'open after 3 s' unless $e->{eof};
	return 'got ' . scalar(@{$e->{msgs}}) . ' messages' if @{$e->{msgs}};
	return 'closed';
}

# A direct WebSocket client sending these bytes after the upgrade:
# "ended <close code>" or "open", and the uuid must not be waiting.
sub bad_input {
	my ($uuid, $bytes) = @_;

	my $w = RustDesk::WebSocket->connect($PORT{ws});
	$w->send_raw($bytes);
	$w->sock()->blocking(0);

	my $e = { kind => 'ws', sock => $w->sock(), in => $w->{in}, out => '',
		queue => [], msgs => [], ctrl => [], bad => [] };

	pump([ $e ], sub { $e->{eof} }, 3);
	$w->sock()->close();

	return end_state($e) . ' ' . close_code($e)
		. (@{$e->{msgs}} ? ' and messages' : '');
}

###############################################################################
