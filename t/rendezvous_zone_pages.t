#!/usr/bin/perl

# A zone for a million peers and more (256m and up) on 4 KiB pages: the
# start says, once, that huge pages would make its heartbeats cheaper and
# which kernel setting keeps them away; a reload with the same zone says
# nothing more; a smaller zone, or a kernel that gives shared memory huge
# pages, gets no such line.  Whichever the machine's setting is, the test
# expects what it means.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client;

my $THP = '/sys/kernel/mm/transparent_hugepage/shmem_enabled';

open my $fh, '<', $THP
	or plan(skip_all => "no $THP: a kernel without transparent huge pages");
my ($setting) = <$fh> =~ /\[(\w+)\]/;
close $fh;
plan(skip_all => "$THP unreadable") unless defined $setting;

my $small_pages = $setting eq 'never' || $setting eq 'deny';

my $t = Test::Nginx->new()->has()->plan(6);

sub start {
	my ($tt, $zone) = @_;
	my $d = $tt->testdir();
	mkdir "$d/keys", 0700;
	$tt->write_file_expand('nginx.conf', stream_conf([
		'rustdesk_key "";',
		'rustdesk_key_dir %%TESTDIR%%/keys;',
		'rustdesk_database off;',
		"rustdesk_zone rd:$zone;",
	], srv_rendezvous(1)));
	$tt->run();
	return $tt;
}

sub notices {
	my ($tt) = @_;
	my @n = $tt->read_file('error.log') =~ /rustdesk zone "rd" of \d+M is on \d+K pages: .*? \Q$THP\E "\w+" keeps from shared memory \("advise" gives them, before nginx starts\)/g;
	return scalar @n;
}

start($t, '300m');

# the zone works: a peer registers and its heartbeat is known

my $u = RustDesk::Client->udp(port(1));
$u->send_msg(register_pk => { id => 'pages001', uuid => 'u1', pk => 'k' x 32 });
my (undef, $m) = $u->recv_msg();
is($m && ($m->{result} // 0), 0, 'a peer registers in a zone of 300m');

$u->send_msg(register_peer => { id => 'pages001' });
(undef, $m) = $u->recv_msg();
ok($m && !$m->{request_pk}, 'its heartbeat is known');

is(notices($t), $small_pages ? 1 : 0,
	"300m with shmem_enabled \"$setting\": "
	. ($small_pages ? 'said once' : 'nothing said'));

like($t->read_file('error.log'), qr/of 300M is on 4K pages.*"\Q$setting\E"/,
	'the line names the zone size, the page size and the setting')
	if $small_pages;
pass("no line to read with shmem_enabled \"$setting\"") unless $small_pages;

$t->reload();
$u->send_msg(register_peer => { id => 'pages001' });
(undef, $m) = $u->recv_msg();
is(notices($t), $small_pages ? 1 : 0, 'a reload with the same zone: no more');

$t->stop();

# below 256m: never

my $t2 = start(Test::Nginx->new(), '255m');
is(notices($t2), 0, '255m: nothing said');
$t2->stop();
