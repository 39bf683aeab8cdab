#!/usr/bin/perl

# A database the workers cannot write is refused when nginx loads its
# configuration, with the path and the user named, instead of every
# RegisterPk being answered SERVER_ERROR later: nginx -t fails, a reload
# keeps the running configuration, and once the path is made searchable
# the same configuration starts and registers peers.  Root only (the
# workers then run as nobody, and the master can make a directory they
# cannot enter).

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client;

plan(skip_all => 'needs root (workers of another user)') if $> != 0;

my $t = Test::Nginx->new()->has()->plan(9)
	->allow_log(qr/cannot write the database/);
my $d = $t->testdir();

mkdir "$d/private" or die "$!\n";
mkdir "$d/private/db" or die "$!\n";
chmod 0700, "$d/private";

sub conf {
	my ($db) = @_;
	return stream_conf([
		'rustdesk_key_dir %%TESTDIR%%/keys;',
		"rustdesk_database $db;",
	], srv_rendezvous(0));
}

# the default, beside the keys: fine

$t->write_file_expand('nginx.conf', conf('%%TESTDIR%%/keys/db_v2.sqlite3'));
$t->run();

my $u = RustDesk::Client->udp(port(0));
$u->send_msg(register_pk => { id => 'access1', uuid => 'u1', pk => 'k' x 32 });
my ($type, $m) = $u->recv_msg();
is(($type // '') . '=' . ($m->{result} // 0), 'register_pk_response=0',
	'a database the workers can write: RegisterPk OK');

# under a directory they cannot enter: refused by nginx -t

$t->write_file_expand('private.conf', conf('%%TESTDIR%%/private/db/db.sqlite3'));

my ($rc, $out) = $t->test_config('private.conf');
isnt($rc, 0, 'under a directory the workers cannot enter: nginx -t fails');
like($out, qr/\[emerg\].*the worker user "nobody" cannot write the database "\Q$d\E\/private\/db\/db\.sqlite3"/,
	'... naming the user and the path');

# a reload into it: refused, the running workers go on with the old one

$t->write_file_expand('nginx.conf', conf('%%TESTDIR%%/private/db/db.sqlite3'));

my @workers = $t->worker_pids();
kill 'HUP', $t->master_pid();
ok($t->wait_log(qr/\[emerg\].*cannot write the database/, 1, 10),
	'a reload into it: refused');

$u->send_msg(register_pk => { id => 'access2', uuid => 'u2', pk => 'k' x 32 });
($type, $m) = $u->recv_msg();
is(($type // '') . '=' . ($m->{result} // 0), 'register_pk_response=0',
	'the reload refused: the old configuration serves on');
# (the master's short-lived check process may still be listed a moment)
is(Test::Nginx::wait_value(sub { join(' ', sort $t->worker_pids()) },
		join(' ', sort @workers)),
	join(' ', sort @workers), '... with the same workers');

# made searchable: the same configuration is fine

chmod 0711, "$d/private";

($rc, $out) = $t->test_config('private.conf');
is($rc, 0, 'the path made searchable: nginx -t passes') or diag($out);

$t->stop();
$t->run();

$u = RustDesk::Client->udp(port(0));
$u->send_msg(register_pk => { id => 'access3', uuid => 'u3', pk => 'k' x 32 });
($type, $m) = $u->recv_msg();
is(($type // '') . '=' . ($m->{result} // 0), 'register_pk_response=0',
	'... and RegisterPk is written there');
ok(-s "$d/private/db/db.sqlite3", 'the database file is there');

###############################################################################
