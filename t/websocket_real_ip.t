#!/usr/bin/perl

# Which header names a WebSocket client behind a trusted proxy
# (rustdesk_real_ip_header, rustdesk_real_ip_from): X-Real-IP by default;
# with X-Forwarded-For its last address, the one the nearest proxy added,
# so that a client's own earlier entries change nothing; never the other
# header.  Seen through the relay's blocklist (127.0.0.2 is listed).

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ encode_msg /;
use RustDesk::WebSocket;

my $t = Test::Nginx->new()->modules('relay')->has()->plan(8);

$t->write_file('blocklist.txt', "127.0.0.2\n");

my $n = 0;

start('');

is(blocked([ 'X-Real-IP', '127.0.0.2' ]), 1, 'default: X-Real-IP believed');
is(blocked([ 'X-Forwarded-For', '127.0.0.2' ]), 0,
	'default: X-Forwarded-For ignored');

start('rustdesk_real_ip_header X-Forwarded-For;');

is(blocked([ 'X-Forwarded-For', '127.0.0.9, 127.0.0.2' ]), 1,
	'X-Forwarded-For: its last address believed');
is(blocked([ 'X-Forwarded-For', '127.0.0.2, 127.0.0.9' ]), 0,
	'X-Forwarded-For: an earlier address (the client\'s own) ignored');
is(blocked([ 'X-Forwarded-For', '127.0.0.2' ]), 1,
	'X-Forwarded-For: a single address');
is(blocked([ 'X-Real-IP', '127.0.0.2' ]), 0,
	'X-Forwarded-For chosen: X-Real-IP ignored');

my ($rc, $out) = test_config('rustdesk_real_ip_header X-Client-IP;');
isnt($rc, 0, 'another header: refused');
like($out, qr/invalid header "X-Client-IP"/, 'another header: said why');

###############################################################################

sub conf {
	my ($header) = @_;

	return stream_conf([ 'rustdesk_real_ip_from 127.0.0.1;', $header,
		'rustdesk_relay_blocklist %%TESTDIR%%/blocklist.txt;' ],
		srv_relay(1, how => 'websocket'));
}

sub start {
	my ($header) = @_;
	$t->restart(conf($header));
}

sub test_config {
	my ($header) = @_;
	$t->write_file_expand('other.conf', conf($header));
	return $t->test_config('other.conf');
}

# 1 when a WebSocket client from 127.0.0.1 with this header is refused as
# 127.0.0.2, 0 when it waits for its partner

sub blocked {
	my ($h) = @_;
	my $uuid = 'real-ip-' . ++$n;

	my $w = RustDesk::WebSocket->connect(port(1), headers => [ $h ]);
	$w->send_binary(encode_msg(request_relay => { uuid => $uuid }));

	for (1 .. 40) {
		my $log = $t->read_file('error.log');
		return 0 if $log =~ /new relay request "$uuid"/;
		return 1 if $w->closed(0.05);
	}

	return -1;
}

###############################################################################
