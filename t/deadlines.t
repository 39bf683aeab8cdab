#!/usr/bin/perl

# What a connection to a TCP or WebSocket port of either module may hold,
# and for how long (PROTOCOL.md sections 6 and 7):
#
# 1. a client that resets its connection right after its upgrade request
#    (or its request) gives its descriptor back at once, not at the
#    timeout (30 s here): an answer that cannot be written ends the
#    session.

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

my $t = Test::Nginx->new()->has()->plan(6);

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
