#!/usr/bin/perl

# Time limits of the rendezvous server (PROTOCOL.md section 6): new ids
# per source IP per day (with a small rustdesk_ip_blocker limit, so that it
# is reached without waiting past the 30-a-minute limit), and a peer going
# offline 30 s after its last registration.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client;

my $t = Test::Nginx->new()->has()->plan(9);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key "";',
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_ip_blocker 1000 5;',
], srv_hbbs(1, 0)));

$t->run();

# new ids from one IP: the first request only opens the IP's entry, then
# ids are recorded until more than 5 are known; after that only known ids
# pass

my $u = RustDesk::Client->udp(port(1), LocalAddr => '127.0.0.61');

my @r = map { reg_pk($u, "limit$_") } 1 .. 8;
is("@r", '0 0 0 0 0 0 0 4', 'the 8th new id from one IP is refused');
is(reg_pk($u, 'limit2'), 0, 'a known id still passes');
is(reg_pk($u, 'limit9'), 4, 'another new id is refused');

my $v = RustDesk::Client->udp(port(1), LocalAddr => '127.0.0.62');
is(reg_pk($v, 'limit9'), 0, 'another IP is not affected');

like($t->read_file('error.log'),
	qr/too many key registrations from this address, refused peer "limit8"/,
	'refusal logged');

# online for 30 s after the last registration

my $b = RustDesk::Client->udp(port(1), LocalAddr => '127.0.0.63');
reg_pk($b, 'expiring1');
$b->send_msg(register_peer => { id => 'expiring1' });
$b->recv_msg();

is(online('expiring1'), 1, 'online after registering');

select undef, undef, undef, 25;
is(online('expiring1'), 1, 'still online after 25 s');

select undef, undef, undef, 6;
is(online('expiring1'), 0, 'offline after 31 s');

my $a = RustDesk::Client->tcp(port(1));
$a->send_msg(punch_hole_request => { id => 'expiring1' });
my (undef, $m) = $a->recv_msg();
is($m && $m->{failure}, 2, 'punch hole: OFFLINE');

sub reg_pk {
	my ($c, $id) = @_;
	$c->send_msg(register_pk => { id => $id, uuid => "u-$id",
		pk => 'k' x 32 });
	my ($type, $m) = $c->recv_msg();
	return -1 unless $type;
	return $m->{result} // 0;
}

sub online {
	my ($id) = @_;
	my $c = RustDesk::Client->tcp(port(0));
	$c->send_msg(online_request => { id => 'x', peers => [ $id ] });
	my (undef, $m) = $c->recv_msg();
	return -1 unless $m;
	return (ord($m->{states} // "\0") & 0x80) ? 1 : 0;
}
