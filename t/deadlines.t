#!/usr/bin/perl

# What a connection to a TCP or WebSocket port of either module may hold,
# and for how long (PROTOCOL.md sections 6 and 7):
#
# 1. a client that resets its connection right after its upgrade request
#    (or its request) gives its descriptor back at once, not at the
#    timeout (30 s here): an answer that cannot be written ends the
#    session;
# 2. the upgrade and the first message must be done within the timeout
#    (rustdesk_timeout, rustdesk_relay_request_timeout; 3 s here) of the
#    connection's accept, however slowly their bytes come: clients that
#    send one byte a second are closed at that deadline, on every port,
#    and so is one that sends only heartbeats; a client whose first
#    message came in time is not (on the main port the timeout is the
#    idle time between messages from then on, a relay client waits for
#    its partner).

use warnings;
use strict;

use Test::More;
use IO::Select;
use Socket qw/ SOL_SOCKET SO_LINGER /;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ frame encode_msg /;
use RustDesk::Relay qw/ relay_request /;
use RustDesk::WebSocket;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->has()->plan(18);

# port 0: the main port (TCP and UDP), 1: the NAT-test port, 2: the
# rendezvous WebSocket port, 3: the relay, 4: the relay's WebSocket port

sub conf {
	my ($timeout) = @_;

	return stream_conf([
		'rustdesk_key_dir %%TESTDIR%%/keys;',
		'rustdesk_database off;',
		'rustdesk_key "";',
		"rustdesk_timeout $timeout;",
		"rustdesk_relay_request_timeout $timeout;",
	], srv_hbbs(0, 1), srv_ws_rendezvous(2), srv_relay(3),
		srv_relay(4, how => 'websocket'));
}

my $UPGRADE = RustDesk::WebSocket->request('dGhlIHNhbXBsZSBub25jZQ==',
	path => '/ws/id');
my $PUNCH = encode_msg(punch_hole_request => { id => 'nobody' });

###############################################################################

# 1. resets: 40 clients a port send their request and reset the
# connection at once (SO_LINGER 0); the workers' sockets are back to what
# they were before within a few seconds, far below the 30 s timeout

$t->write_file_expand('nginx.conf', conf('30s'));
$t->run();

for my $case (
	[ 2, $UPGRADE, 'rendezvous websocket port: an upgrade request' ],
	[ 2, "POST / HTTP/1.1\r\nHost: x\r\n\r\n",
		'rendezvous websocket port: a refused upgrade request' ],
	[ 4, $UPGRADE, 'relay websocket port: an upgrade request' ],
	[ 0, frame(encode_msg(test_nat_request => { serial => 0 })),
		'main port: a TestNatRequest' ],
	[ 1, frame(encode_msg(test_nat_request => { serial => 0 })),
		'NAT-test port: a TestNatRequest' ],
	[ 3, sub { relay_request(uuid => "reset-$_[0]") },
		'relay port: a RequestRelay' ])
{
	my ($port, $request, $name) = @$case;
	my $base = $t->stable_fds(qr/^socket:/);

	for my $i (1 .. 40) {
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . port($port),
			Proto => 'tcp') or die "connect: $!\n";
		$s->syswrite(ref $request ? $request->($i) : $request);
		setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
		close $s;
	}

	my $n = $t->wait_fds('<=', $base, 5, qr/^socket:/);
	ok($n <= $base, "reset after $name: descriptors given back at once")
		or diag("$n sockets in the workers, $base before");
}

###############################################################################

# 2. deadlines: every client connects at once; the first ones send one
# byte of their request a second (each request is longer than the 9 s
# the clients run), the others send what they must in time

$t->restart(conf('3s'));

my @drip = (
	[ 'rendezvous websocket port: the upgrade request',
		raw(2), $UPGRADE ],
	[ 'rendezvous websocket port: the first message after the upgrade',
		ws(2), RustDesk::WebSocket->frame(0x2, $PUNCH) ],
	[ 'main port: the first message', raw(0), frame($PUNCH) ],
	[ 'main port: heartbeats only', raw(0), "\x00" x 12 ],
	[ 'NAT-test port: the message', raw(1),
		frame(encode_msg(test_nat_request => { serial => 2147483647 })) ],
	[ 'relay port: the RequestRelay', raw(3),
		relay_request(uuid => 'drip-1') ],
	[ 'relay websocket port: the upgrade request', raw(4), $UPGRADE ],
	[ 'relay websocket port: the RequestRelay after the upgrade', ws(4),
		RustDesk::WebSocket->frame(0x2,
			encode_msg(request_relay => { uuid => 'drip-2' })) ],
);

# in time: a main-port client asks every 2 s, a WebSocket one too, a
# relay client has sent its RequestRelay and waits for a partner

my $main = RustDesk::Client->tcp(port(0));
my $wsmain = RustDesk::WebSocket->connect(port(2));
my $waiter = raw(3);
$waiter->syswrite(relay_request(uuid => 'waiter-1'));

my @ok = (
	[ 'main port: a message every 2 s', $main->sock(), frame($PUNCH) ],
	[ 'rendezvous websocket port: a message every 2 s', $wsmain->sock(),
		RustDesk::WebSocket->frame(0x2, $PUNCH) ],
	[ 'relay port: waiting for its partner', $waiter, undef ],
);

my %closed = run_clients(9, [ map { $_->[1] } @drip, @ok ], sub {
	my ($tick, $i) = @_;

	return substr($drip[$i][2], $tick, 1) if $i < @drip;

	my $msg = $ok[$i - @drip][2];
	return defined $msg && $tick % 2 == 0 ? $msg : '';
});

for my $i (0 .. $#drip) {
	my $at = $closed{$i};

	ok(defined $at && $at <= 5, "one byte a second, $drip[$i][0]: closed "
		. 'at the deadline')
		or diag(defined $at ? "closed after $at bytes" : 'not closed');
}

for my $i (0 .. $#ok) {
	ok(!defined $closed{@drip + $i}, "in time, $ok[$i][0]: still open "
		. 'after twice the timeout');
}

# and still served

$main->send_msg(punch_hole_request => { id => 'nobody' });
my ($type) = $main->recv_msg(3);
is($type // 'nothing', 'punch_hole_response',
	'main port: answered after the deadline of its first message');

###############################################################################

sub raw {
	my ($n) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . port($n),
		Proto => 'tcp') or die "connect: $!\n";
	setsockopt($s, Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);
	return $s;
}

sub ws {
	my ($n) = @_;
	my $w = RustDesk::WebSocket->connect(port($n));
	my $s = $w->sock();
	setsockopt($s, Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);
	return $s;
}

# Runs the clients for $ticks seconds: at the start of each second, what
# $what->(second, client index) returns is written to each client still
# open; anything the server sends is read and dropped.  Returns
# (client index => bytes it had written when the server closed it) for
# those closed.

sub run_clients {
	my ($ticks, $socks, $what) = @_;
	my (%closed, %sent);
	my $start = time();
	my $sel = IO::Select->new();
	my %index;

	for my $i (0 .. $#$socks) {
		$sel->add($socks->[$i]);
		$index{$socks->[$i]} = $i;
		$sent{$i} = 0;
	}

	for my $tick (0 .. $ticks - 1) {
		for my $i (0 .. $#$socks) {
			next if defined $closed{$i};

			my $bytes = $what->($tick, $i);
			next unless length $bytes;

			if ($socks->[$i]->syswrite($bytes)) {
				$sent{$i} += length $bytes;
			} else {
				$closed{$i} = $sent{$i};
				$sel->remove($socks->[$i]);
			}
		}

		while ((my $left = $start + $tick + 1 - time()) > 0) {
			last unless $sel->count();

			for my $s ($sel->can_read($left)) {
				my $n = $s->sysread(my $buf, 65536);
				next if $n;

				$closed{$index{$s}} = $sent{$index{$s}};
				$sel->remove($s);
			}
		}
	}

	return %closed;
}

###############################################################################
