#!/usr/bin/perl

# Broken and hostile input to the rendezvous server's WebSocket port
# (WS.md; PROTOCOL.md section 2; RFC 6455): refused upgrade requests (400,
# 405, 426, each with Connection: close, then the end), wrong frames
# (unmasked 1002, text 1003, too large 1009 at once, reserved bits, unknown
# opcodes, stray continuations, bad close codes, broken control frames:
# 1002), the close handshake (echoed, also in the middle of a fragmented
# message), ping/pong, a slow client, garbage after the upgrade, hundreds of
# half-done upgrades.  No worker may die, no descriptor may leak, nothing may
# be logged above [error].

use warnings;
use strict;

use Test::More;
use Digest::SHA qw/ sha1_base64 /;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw/ time /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ encode_msg decode_msg msg_text random_bytes /;
use RustDesk::WebSocket;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->has()->plan(59);

$t->write_file_expand('nginx.conf',
	stream_conf([ 'rustdesk_key_dir %%TESTDIR%%/keys;' ],
	srv_rendezvous(1), srv_ws_rendezvous(3)));

$t->run();

my $WS = port(3);
my @workers = $t->worker_pids();
my $KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
my $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
my $TNR = encode_msg(test_nat_request => { serial => 0 });

srand(20241123);

###############################################################################

# 1. refused upgrade requests: the status, Connection: close, then the end

sub req {
	my (%o) = @_;
	my %h = (Host => 'localhost', Upgrade => 'websocket',
		Connection => 'Upgrade', 'Sec-WebSocket-Key' => $KEY,
		'Sec-WebSocket-Version' => '13');
	my @order = qw/ Host Upgrade Connection Sec-WebSocket-Key
		Sec-WebSocket-Version /;

	my $r = ($o{line} // 'GET /ws/id HTTP/1.1') . "\r\n";

	for my $name (@order) {
		my $v = exists $o{$name} ? $o{$name} : $h{$name};
		$r .= "$name: $v\r\n" if defined $v;
	}

	$r .= "$_->[0]: $_->[1]\r\n" for @{$o{extra} // []};

	return $r . "\r\n";
}

my $pad = join('', map { "X-Pad-$_: " . ('p' x 80) . "\r\n" } 1 .. 110);

my @refusals = (
	[ 'no Upgrade header', req(Upgrade => undef), 400 ],
	[ 'Upgrade: h2c', req(Upgrade => 'h2c'), 400 ],
	[ 'no Connection: upgrade', req(Connection => 'keep-alive'), 400 ],
	[ 'POST', req(line => 'POST /ws/id HTTP/1.1'), 405, 'Allow: GET' ],
	[ 'version 8', req('Sec-WebSocket-Version' => '8'), 426,
		'Sec-WebSocket-Version: 13' ],
	[ 'no Sec-WebSocket-Key', req('Sec-WebSocket-Key' => undef), 400 ],
	[ 'a key that is not base64', req('Sec-WebSocket-Key' => 'not a key!'),
		400 ],
	[ 'a key of 15 bytes', req('Sec-WebSocket-Key' => 'AAAAAAAAAAAAAAAAAAAA'),
		400 ],
	[ 'HTTP/1.0', req(line => 'GET /ws/id HTTP/1.0'), 400 ],
	[ '9000 bytes without an empty line',
		substr("GET /ws/id HTTP/1.1\r\n$pad", 0, 9000), 400 ],
	[ '9000 bytes without a line end', 'A' x 9000, 400 ],
	[ 'a whole request over 8 KiB', req(extra => [ [ 'X-Big', 'b' x 9000 ] ]),
		400 ],
);

for my $case (@refusals) {
	my ($name, $request, $status, $header) = @$case;
	my ($answer, $closed) = raw($request);

	my ($got) = $answer =~ m{^HTTP/1\.1 (\d{3}) };
	my $exp = $status;
	my $g = $got // 'no status: ' . substr($answer, 0, 40);

	$g .= ', Connection: close' if $answer =~ /^Connection: close\r$/mi;
	$exp .= ', Connection: close';

	if ($header) {
		$g .= ", $header" if $answer =~ /^\Q$header\E\r$/mi;
		$exp .= ", $header";
	}

	$g .= $answer =~ /\r\n\r\n\z/ ? ', one answer' : ', more than an answer';
	$exp .= ', one answer';
	$g .= $closed ? ', closed' : ', not closed';
	$exp .= ', closed';

	is($g, $exp, "refused: $name");
}

{
	my %n;
	$n{$_->[2]}++ for @refusals;

	my $got = join(' ', map { "$_:" . $t->wait_log(
		qr/\[info\].*websocket upgrade refused \($_\): \S/, $n{$_}) }
		sort keys %n);
	is($got, join(' ', map { "$_:$n{$_}" } sort keys %n),
		'refusals logged at info with their status');
}

# a request just under 8 KiB is fine

{
	my $w = ws(headers => [ [ 'X-Big', 'b' x 7900 ] ]);
	is(nat($w), 'ok', 'a request of 8000 bytes: upgraded, answered');
}

###############################################################################

# 2. wrong frames: a close frame with the code, then the end

my $F = 'RustDesk::WebSocket';

my @frames = (
	[ 'an unmasked binary frame', $F->frame(0x2, $TNR, masked => 0), 1002 ],
	[ 'an unmasked ping', $F->frame(0x9, 'p', masked => 0), 1002 ],
	[ 'a text frame', $F->frame(0x1, 'hello'), 1003 ],
	[ 'a fragmented text message', $F->frame(0x1, 'hel', fin => 0), 1003 ],
	[ 'RSV1 set', $F->frame(0x2, $TNR, rsv => 4), 1002 ],
	[ 'RSV3 set', $F->frame(0x2, $TNR, rsv => 1), 1002 ],
	[ 'opcode 3', $F->frame(0x3, 'x'), 1002 ],
	[ 'opcode 0xB', $F->frame(0xB, 'x'), 1002 ],
	[ 'a continuation without a start', $F->frame(0x0, $TNR), 1002 ],
	[ 'a new message inside a fragmented one',
		$F->frame(0x2, 'ab', fin => 0) . $F->frame(0x2, $TNR), 1002 ],
	[ 'a fragmented ping', $F->frame(0x9, 'p', fin => 0), 1002 ],
	[ 'a ping of 126 bytes', $F->frame(0x9, 'p' x 126), 1002 ],
	[ 'a close of 1 byte', $F->frame(0x8, "\x03"), 1002 ],
	[ 'close code 999', $F->frame(0x8, pack('n', 999)), 1002 ],
	[ 'close code 1005', $F->frame(0x8, pack('n', 1005)), 1002 ],
	[ 'close code 1006', $F->frame(0x8, pack('n', 1006)), 1002 ],
	[ 'close code 5000', $F->frame(0x8, pack('n', 5000)), 1002 ],

	# too large: the header alone is enough to refuse, no payload sent
	[ 'a 64-bit length of 2^40', $F->frame(0x2, '', len => 2**40), 1009 ],
	[ 'a 64-bit length of 2^31', $F->frame(0x2, '', len => 2**31), 1009 ],
	[ 'a length of 64 KiB + 1', $F->frame(0x2, '', len => 65537), 1009 ],
	[ 'fragments adding up to more than 64 KiB',
		$F->frame(0x2, 'a' x 40000, fin => 0)
		. $F->frame(0x0, '', len => 40000), 1009 ],
	[ 'a 64-bit length with its top bit set',
		substr($F->frame(0x2, '', len => 2**40), 0, 2) . "\x80" . "\0" x 7
		. 'mask', 1002 ],
);

my $rss0 = rss();

for my $case (@frames) {
	my ($name, $bytes, $code) = @$case;
	my $w = ws() or do { fail("$name: no upgrade"); next };

	$w->send_raw($bytes);
	is(close_of($w), "close $code, closed", $name);
}

{
	my $rss = rss();
	note("workers' resident memory: $rss0 kB before the frames, $rss kB "
		. 'after');
	ok($rss - $rss0 < 32 * 1024, 'announced lengths of 2^31 and 2^40: '
		. 'nothing allocated for them');
}

###############################################################################

# 3. the close handshake: the code echoed, then the end

{
	my @bad;

	for my $case ([ 'close 1000', $F->frame(0x8, pack('n', 1000)),
			pack('n', 1000) ],
		[ 'close 1001 with a reason', $F->frame(0x8, pack('n', 1001) . 'bye'),
			pack('n', 1001) ],
		[ 'close 3000', $F->frame(0x8, pack('n', 3000)), pack('n', 3000) ],
		[ 'close 4999', $F->frame(0x8, pack('n', 4999)), pack('n', 4999) ],
		[ 'close without a code', $F->frame(0x8, ''), '' ])
	{
		my ($name, $bytes, $echo) = @$case;
		my $w = ws() or do { push @bad, "$name: no upgrade"; next };

		$w->send_raw($bytes);
		my ($op, $payload) = $w->recv_frame();
		my $got = defined $op ? sprintf('op %d %s', $op,
			unpack('H4', $payload // '')) : 'nothing';
		my $exp = sprintf('op 8 %s', unpack('H4', $echo));
		push @bad, "$name: $got, expected $exp" if $got ne $exp;
		push @bad, "$name: not closed" unless $w->closed();
	}

	is(join("\n", @bad), '', 'a close frame: the code echoed, then the end');
}

{
	my $w = ws();
	$w->send_raw($F->frame(0x2, substr($TNR, 0, 1), fin => 0)
		. $F->frame(0x8, pack('n', 1000)));
	is(close_of($w), 'close 1000, closed',
		'a close in the middle of a fragmented message: echoed, the end');
}

###############################################################################

# 4. ping -> pong with the same payload; the connection goes on

{
	my @bad;

	for my $payload ('hello ping', '', join('', map { chr } 0 .. 124)) {
		my $w = ws() or do { push @bad, 'no upgrade'; next };
		$w->send_frame(0x9, $payload);
		my ($op, $p) = $w->recv_frame();
		push @bad, sprintf('ping of %d bytes: %s', length $payload,
			defined $op ? "op $op, " . length($p) . ' bytes' : 'nothing')
			unless defined $op && $op == 0xA && $p eq $payload;
		push @bad, 'after the ping: ' . nat($w) if nat($w) ne 'ok';
	}

	is(join("\n", @bad), '', 'ping: pong with the same payload, then the '
		. 'connection goes on');
}

{
	# a message in three fragments with a ping and a pong in between

	my $w = ws();
	my $third = int(length($TNR) / 3) || 1;

	$w->send_raw($F->frame(0x2, substr($TNR, 0, $third), fin => 0)
		. $F->frame(0x9, 'between')
		. $F->frame(0x0, substr($TNR, $third, $third), fin => 0)
		. $F->frame(0xA, 'unasked')
		. $F->frame(0x0, substr($TNR, 2 * $third)));

	my ($op, $p) = $w->recv_frame();
	is(defined $op ? "$op $p" : 'nothing', '10 between',
		'a ping between fragments: answered');
	is(answer($w), 'test_nat_response{port=' . $w->sock()->sockport() . '}',
		'fragments around control frames: reassembled, answered');
}

{
	my $w = ws();
	$w->send_frame(0xA, 'unasked');
	is(nat($w), 'ok', 'an unasked pong: ignored');
}

###############################################################################

# 5. a slow client: the handshake and the message one byte at a time; the
# handshake and the message in one write

{
	# each byte read by the server before the next is sent
	my $w = eval { RustDesk::WebSocket->connect($WS, path => '/ws/id',
		byte_delay => sub { $t->wait_read($_[0]) }) };
	ok($w, 'handshake one byte at a time: upgraded, the accept key right')
		or diag($@);

	if ($w) {
		$w->send_raw($_), $t->wait_read($w)
			for split //, $F->frame(0x2, $TNR);
		is(answer($w), 'test_nat_response{port=' . $w->sock()->sockport()
			. '}', 'a message one byte at a time: answered');
	} else {
		fail('a message one byte at a time: answered');
	}
}

{
	my $s = connect_raw();
	$s->syswrite(req() . $F->frame(0x2, $TNR));
	my ($in, $closed) = read_all($s);

	my $accept = sha1_base64($KEY . $GUID) . '=';
	my ($head, $rest) = split /\r\n\r\n/, $in, 2;
	$rest //= '';

	ok($head =~ m{^HTTP/1\.1 101 } && $head =~ /^Sec-WebSocket-Accept: \Q$accept\E\r?$/mi,
		'the handshake and a message in one write: upgraded');

	my $msg = '';
	if (length $rest >= 2 && ord($rest) == 0x82) {
		my $len = ord(substr($rest, 1, 1));
		$msg = msg_text(decode_msg(substr($rest, 2, $len))) if $len < 126;
	}

	is($msg, 'test_nat_response{port=' . $s->sockport() . '}',
		'the handshake and a message in one write: answered');
	ok($closed, 'the handshake and a message in one write: then closed');
}

###############################################################################

# 6. garbage after the upgrade

{
	my $w = ws();
	$w->send_raw("\xff" x 64);
	is(close_of($w), 'close 1002, closed', 'garbage bytes after the upgrade');

	$w = ws();
	$w->send_raw(req());
	is(close_of($w), 'close 1002, closed',
		'a second upgrade request after the upgrade');

	my $s = connect_raw();
	$s->syswrite(req() . "\xff\xfe garbage");
	my ($in, $closed) = read_all($s);
	my ($head, $rest) = split /\r\n\r\n/, $in, 2;
	is(($head =~ m{^HTTP/1\.1 (\d+)})[0] // 'none', '101',
		'garbage in the handshake\'s write: upgraded');
	$rest //= '';
	is(length $rest >= 4 ? sprintf('op %d, close %d', ord($rest) & 0x0F,
		unpack('n', substr($rest, 2, 2))) : 'nothing',
		'op 8, close 1002', 'garbage in the handshake\'s write: then close 1002');
	ok($closed, 'garbage in the handshake\'s write: then the end');

	# a binary message that is no RendezvousMessage

	my @bad;

	for my $n (1 .. 20) {
		my $w = ws() or do { push @bad, "$n: no upgrade"; next };
		$w->send_binary(random_bytes(1 + int(rand(300))));
		push @bad, "$n: not closed" unless $w->closed();
	}

	is(join(', ', @bad), '', '20 binary messages of random bytes: closed');
}

###############################################################################

# 7. hundreds of half-done upgrades, and upgraded connections with half a
# frame, left open, then closed by the client: the workers' descriptors
# come back to what they were

{
	my $base = $t->stable_fds(qr/^socket:/);
	note("worker socket descriptors at rest: $base");

	my @c;

	for my $n (1 .. 250) {
		my $s = connect_raw() or last;
		my $r = req();
		$s->syswrite(substr($r, 0, 1 + $n % (length($r) - 1)));
		push @c, $s;
	}

	for (1 .. 50) {
		my $w = ws() or last;
		$w->send_raw(substr($F->frame(0x2, '', len => 1000), 0, 5));
		push @c, $w;
	}

	is(scalar @c, 300, '300 connections opened');

	my $open = $t->wait_fds('>=', $base + 300, 5, qr/^socket:/);
	note("300 half-done connections: $open socket descriptors");
	ok($open >= $base + 300, 'half-done upgrades held by the workers');

	close_any($_) for @c;

	my $after = $t->wait_fds('<=', $base + 2, 5, qr/^socket:/);
	note("closed by the client: $after socket descriptors");
	ok($after <= $base + 2, 'closed: the descriptors released')
		or diag("$after descriptors, $base at rest");
}

###############################################################################

# 8. still serving, nobody died

is(nat(ws()), 'ok', 'still answering over WebSocket');

{
	my @now = $t->worker_pids();
	is("@now", "@workers", 'no worker died');
}

###############################################################################

sub connect_raw {
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$WS",
		Proto => 'tcp') or die "connect: $!\n";
	return $s;
}

# What the server sends until it closes (or 5 s pass): (bytes, closed).

sub read_all {
	my ($s) = @_;
	my ($in, $closed) = ('', 0);
	my $end = time() + 5;
	my $sel = IO::Select->new($s);

	while ((my $left = $end - time()) > 0) {
		last unless $sel->can_read($left);
		my $n = $s->sysread(my $buf, 65536);
		if (!$n) {
			$closed = 1;
			last;
		}
		$in .= $buf;
	}

	return ($in, $closed);
}

# A request on a new connection: (the answer, closed).

sub raw {
	my ($request) = @_;
	my $s = connect_raw();
	$s->syswrite($request);
	return read_all($s);
}

# An upgraded connection, undef (with a note) if the upgrade failed.

sub ws {
	my (%o) = @_;
	my $w = eval { RustDesk::WebSocket->connect($WS, %o) };
	note("upgrade: $@") unless $w;
	return $w;
}

# "close <code>, closed" when the next frame is a close with that code and
# the connection ends.

sub close_of {
	my ($w) = @_;
	my ($op, $payload) = $w->recv_frame();

	return 'nothing' . ($w->closed(0.5) ? ', closed' : '') unless defined $op;
	return "opcode $op" unless $op == 0x8;

	my $code = length $payload >= 2 ? unpack('n', $payload) : 'none';
	return "close $code, " . ($w->closed() ? 'closed' : 'not closed');
}

# The answer to the next message, as text.

sub answer {
	my ($w) = @_;
	my ($type, $m) = $w->recv_msg();
	return 'nothing' unless defined $type;
	return 'close ' . unpack('H*', $m) if $type eq 'close';
	return msg_text($type, $m);
}

# 'ok' when a TestNatRequest on the connection is answered with its port.

sub nat {
	my ($w) = @_;
	return 'no connection' unless $w;
	$w->send_binary($TNR);
	my $got = answer($w);
	my $exp = 'test_nat_response{port=' . $w->sock()->sockport() . '}';
	return $got eq $exp ? 'ok' : $got;
}

sub close_any {
	my ($c) = @_;
	$c->isa('RustDesk::WebSocket') ? $c->close() : CORE::close($c);
}

# The workers' resident memory, kB.

sub rss {
	my $kb = 0;

	for my $pid ($t->worker_pids()) {
		open my $fh, '<', "/proc/$pid/status" or next;
		while (<$fh>) {
			$kb += $1 if /^VmRSS:\s+(\d+)/;
		}
		close $fh;
	}

	return $kb;
}

###############################################################################
