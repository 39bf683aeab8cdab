#!/usr/bin/perl

# rustdesk_relay_tickets on: the relay pairs only sessions this nginx's
# rendezvous brokered (README "Relay tickets").  Each RequestRelay passed
# on to a peer and each RelayResponse passed back leaves a ticket for the
# session's uuid, good for its two connections until
# rustdesk_brokered_timeout; unmodified clients keep working (the whole
# flow of RustDesk::Session, over UDP registration, whichever worker each
# half lands on, and after a reload); anything else is refused with a log
# line and never meets a brokered half.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::Relay qw/ side wait_close read_exact /;
use RustDesk::Session;

my $t = Test::Nginx->new()->has()->plan(14);

my $conf = stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_database off;',
	'rustdesk_relay_servers 127.0.0.1:%%PORT_1%%;',
	'rustdesk_relay_tickets on;',
	'rustdesk_brokered_timeout 2s;',
	'log_format relay \'$rustdesk_uuid $rustdesk_result $rustdesk_peer_id\';',
], srv_rendezvous(0), srv_block([ '127.0.0.1:%%PORT_1%% reuseport' ],
	'rustdesk_relay;', 'access_log %%TESTDIR%%/relay.log relay;'));

$t->write_file_expand('nginx.conf', $conf);
$t->run();

my $key = $t->read_file('keys/id_ed25519.pub');
my %SESSION = (rendezvous_port => port(0), relay_port => port(1),
	key => $key);

###############################################################################

# unmodified clients: the whole flow, ten times (halves on either worker)

my @why = grep { $_ } map { RustDesk::Session::relayed_session(%SESSION) }
	1 .. 10;
is(join("\n", @why), '', '10 brokered sessions relayed');

is(Test::Nginx::wait_value(sub {
		scalar(() = $t->read_file('relay.log') =~ / paired session\d+$/mg)
	}, 10), 10, '... each paired, with the id of the peer asked to relay');

# a uuid nobody brokered: both halves refused, at once

my $a = side(port(1), 'stranger', key => $key);
my $b = side(port(1), 'stranger', key => $key);

is(join(' ', (wait_close($a, 3))[0], (wait_close($b, 3))[0]), 'eof eof',
	'a uuid not brokered here: both connections closed');
ok($t->wait_log(qr/relay request "stranger" refused: no session brokered/,
	2), '... with a log line');

# a brokered uuid: its two connections pair, a third one is refused

my $peer = RustDesk::Client->udp_peer(port(0), 'peer001');
my $uuid = broker($peer, 'once');

my $p1 = side(port(1), $uuid, key => $key);
my $p2 = side(port(1), $uuid, key => $key);
$p1->send_raw('12345');
is((read_exact($p2->sock(), 5, 5))[0], '12345', 'a brokered uuid pairs');

my $p3 = side(port(1), $uuid, key => $key);
is((wait_close($p3, 3))[0], 'eof', 'a third connection with it is refused');
ok($t->wait_log(qr/relay request "\Q$uuid\E" refused: its two connections came/,
	2), '... with a log line');

$p1->send_raw('67890');
is((read_exact($p2->sock(), 5, 5))[0], '67890',
	'... and the pair goes on');
$p1->close();
$p2->close();

# a ticket expires with rustdesk_brokered_timeout

$uuid = broker($peer, 'late');
sleep 2.5;

my $late = side(port(1), $uuid, key => $key);
is((wait_close($late, 3))[0], 'eof', 'a brokered uuid after expiry: refused');

# tickets live through a reload

$uuid = broker($peer, 'reload');
$t->reload();

$p1 = side(port(1), $uuid, key => $key);
$p2 = side(port(1), $uuid, key => $key);
$p1->send_raw('after');
is((read_exact($p2->sock(), 5, 5))[0], 'after',
	'a ticket from before a reload pairs after it');
$p1->close();
$p2->close();

# a flood of strangers meanwhile: every one refused, brokered sessions
# unaffected

my @flood = map { side(port(1), "flood-$_", key => $key) } 1 .. 200;

@why = grep { $_ } map { RustDesk::Session::relayed_session(%SESSION) }
	1 .. 3;
is(join("\n", @why), '', 'brokered sessions relay during a flood of strangers');

my @open = grep { (wait_close($_, 3))[0] ne 'eof' } @flood;
is(scalar @open, 0, 'all 200 strangers refused');
$_->close() for @flood;

# a relay that cannot check tickets: no rendezvous module in this nginx

$t->modules('relay');
$t->write_file_expand('alone.conf', stream_conf([
	'rustdesk_relay_tickets on;',
], srv_block([ '127.0.0.1:%%PORT_1%%' ], 'rustdesk_relay;')));

my ($rc, $out) = $t->test_config('alone.conf');
isnt($rc, 0, 'tickets without the rendezvous module: nginx -t fails');
like($out, qr/"rustdesk_relay_tickets" needs the rendezvous module/,
	'... saying why');

###############################################################################

# A RequestRelay from A for the peer, passed on by the rendezvous (the peer
# hears it): the session's uuid, brokered.
sub broker {
	my ($peer, $name) = @_;
	return RustDesk::Session::brokered_uuid(port(0), $peer, $name,
		key => $key);
}

###############################################################################
