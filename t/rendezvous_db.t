#!/usr/bin/perl

# The peer database (DESIGN.md "Persistence", PROTOCOL.md section 6): the
# file and its schema, compatible with rustdesk-server's db_v2.sqlite3, in
# WAL mode; rows written by RegisterPk (insert with a random guid, update
# by guid); an existing rustdesk-server database honoured as it is; peers
# known again after a restart; a broken file refused at startup;
# "rustdesk_database off"; write failures answered SERVER_ERROR without a
# crash; many writes from both workers.
#
# The database is read with the sqlite3 CLI, as the user that owns it (the
# workers run as nobody when the tests run as root): a root CLI on a live
# database could leave -wal or -shm files the workers cannot write.

use warnings;
use strict;

use Test::More;
use IO::Select;
use POSIX ();
use Time::HiRes qw/ time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_text msg_fields /;
use RustDesk::Sqlite qw/ has_sqlite3 sql become /;

my $t = Test::Nginx->new()->has();

Test::More::plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();

$t->plan(76);

# rustdesk-server's schema, as its src/database.rs creates it

my $REF_SCHEMA = <<'EOF';
create table if not exists peer (
    guid blob primary key not null,
    id varchar(100) not null,
    uuid blob not null,
    pk blob not null,
    created_at datetime not null default(current_timestamp),
    user blob,
    status tinyint,
    note varchar(300),
    info text not null
) without rowid;
create unique index if not exists index_peer_id on peer (id);
create index if not exists index_peer_user on peer (user);
create index if not exists index_peer_created_at on peer (created_at);
create index if not exists index_peer_status on peer (status);
EOF

my $d = $t->testdir();
my $DB = "$d/keys/db_v2.sqlite3";       # the default: beside the keys
my $A_IP = '127.0.0.2';                 # the requester of punches

my $PK1 = join('', map { chr(int(rand(256))) } 1 .. 32);
my $PK2 = join('', map { chr(int(rand(256))) } 1 .. 32);

###############################################################################

# A fresh start: the file, its schema, WAL

ok(!-e $DB, 'no database before the start');

start('keys', '');

my $key = $t->read_file('keys/id_ed25519.pub');

# every worker has its connections open before the CLI looks at the file
wait_workers();

ok(-f $DB, 'fresh start: database created at <key dir>/db_v2.sqlite3');

my $ref = "$d/reference.sqlite3";
sql($ref, $REF_SCHEMA);

is(join(', ', statements(sql($DB, '.schema'))),
	'index index_peer_created_at, index index_peer_status, '
	. 'index index_peer_user, table peer, unique index index_peer_id',
	'schema: table peer and its 4 indexes, nothing else');
is(describe($DB), describe($ref),
	'schema: columns, keys and indexes as rustdesk-server\'s');
is(sql($DB, 'pragma journal_mode'), 'wal', 'journal mode WAL');

# RegisterPk of a new peer: a row; a new pk from the same IP: updated

my $c = udp('127.0.0.1');

is(reg_pk($c, 'db-peer-01', 'uuid-db-peer-01', $PK1), 0, 'new peer: OK');

my $row = row($DB, 'db-peer-01');
my $guid = $row->{guid};

is(length($guid) / 2, 16, 'new peer: 16-byte guid');
like(join('', (sprintf('%-32s', $guid) =~ /^.{12}(.).{3}(.)/)), qr/^4[89AB]$/,
	'new peer: guid is a version 4 UUID (version nibble 4, variant 10)');
is(show_row($row), 'id=db-peer-01 uuid=' . hex_of('uuid-db-peer-01')
	. ' pk=' . hex_of($PK1) . ' info={"ip":"127.0.0.1"} user=NULL '
	. 'status=NULL note=NULL', 'new peer: id, uuid, pk, info');
like($row->{created_at}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/,
	'new peer: created_at set');
is(sql($DB, "select abs(julianday('now') - julianday(created_at)) < 1 "
	. "from peer where id = 'db-peer-01'"), 1,
	'new peer: created_at now (within a day)');

is(reg_pk($c, 'db-peer-01', 'uuid-db-peer-01', $PK2), 0,
	'new pk from the same IP: OK');

my $row2 = row($DB, 'db-peer-01');

is(show_row($row2), 'id=db-peer-01 uuid=' . hex_of('uuid-db-peer-01')
	. ' pk=' . hex_of($PK2) . ' info={"ip":"127.0.0.1"} user=NULL '
	. 'status=NULL note=NULL', 'new pk: pk updated');
is("$row2->{guid} $row2->{created_at}", "$guid $row->{created_at}",
	'new pk: guid and created_at kept');
is(sql($DB, 'select count(*) from peer'), 1, 'new pk: still one row');

# For the restart below: two peers, registered from their own addresses

my $b1 = udp('127.0.0.8');
my $b2 = udp('127.0.0.9');

is(reg_pk($b1, 'db-persist-1', 'uuid-persist-1', $PK1) . ' '
	. reg_pk($b2, 'db-persist-2', 'uuid-persist-2', $PK2), '0 0',
	'restart: two peers registered');

my %before = map { $_ => row($DB, $_)->{guid} } qw/ db-persist-1 db-persist-2 /;

# Many writes: 100 peers from 100 sockets on 20 addresses, all sent
# before any answer is read; both workers write

{
	my (@s, %res);

	for my $n (0 .. 99) {
		my $s = udp('127.0.0.' . (50 + $n % 20));
		$s->send_msg(register_pk => { id => sprintf('db-many-%03d', $n),
			uuid => "uuid-many-$n", pk => $PK1 });
		push @s, $s;
	}

	for my $s (@s) {
		my ($type, $m) = $s->recv_msg();
		$res{defined $type ? msg_text($type, $m) : 'timeout'}++;
	}

	is(join(' ', map { "$_ x$res{$_}" } sort keys %res),
		'register_pk_response{} x100', '100 peers: all answered OK');

	my $rows = wait_value(sub { sql($DB, "select count(*) from peer "
		. "where id like 'db-many-%'") }, 100);
	is($rows, 100, '100 peers: 100 rows');

	is(sql($DB, "select count(distinct guid) from peer "
		. "where id like 'db-many-%'"), 100, '100 peers: 100 guids');

	my %w;
	my $log = $t->read_file('error.log');
	$w{$1}++ while $log
		=~ /(\d+)#\d+: \*\d+ udp client 127\.0\.0\.[56]\d:\d+ connected/g;
	is(scalar keys %w, 2, '100 peers: handled by both workers');
}

# A database the workers cannot write: another process holds the write
# lock (the workers wait their busy timeout); then it is released

{
	my @pids = $t->worker_pids();
	my $lock = lock_db($DB);

	my $l1 = udp('127.0.0.40');
	$l1->send_msg(register_pk => { id => 'db-lock-1', uuid => 'uuid-lock-1',
		pk => $PK1 });

	# meanwhile, the worker waiting for the write answers others

	my $w = wait_until(sub { $t->worker_of($l1) }, 3);
	my $other = 'none on that worker';

	for (1 .. 50) {
		last unless $w;

		my $s = udp('127.0.0.42');
		$s->send_msg(register_peer => { id => 'db-lock-peer' });
		my ($type, $m) = $s->recv_msg(3);
		next unless $t->worker_of($s) == $w;

		$other = defined $type ? msg_text($type, $m) : 'timeout';
		$other .= ' (after the RegisterPk answer)'
			if IO::Select->new($l1->sock())->can_read(0);
		last;
	}

	is($other, 'register_peer_response{request_pk=1}',
		'write pending: the worker still answers');

	my ($type, $m) = $l1->recv_msg(15);
	is(defined $type ? msg_text($type, $m) : 'timeout',
		'register_pk_response{result=7}', 'locked: SERVER_ERROR');

	unlock_db($lock);

	like(join("\n", grep { /db-lock-1/ && /database/i }
		$t->read_file('error.log') =~ /^.*\[error\].*$/mg),
		qr/\[error\]/, 'locked: write error logged at [error]');
	is(join(' ', $t->worker_pids()), join(' ', @pids), 'locked: no crash');

	is(reg_pk(udp('127.0.0.41'), 'db-lock-2', 'uuid-lock-2', $PK1), 0,
		'lock released: OK');
	is(sql($DB, "select id || ' ' || info from peer where id like 'db-lock-%'"),
		'db-lock-2 {"ip":"127.0.0.41"}', 'lock released: row written');
}

###############################################################################

# Restart: the peers are known from the database

start('keys', '');
wait_workers();

is(punch('db-persist-1'), 'punch_hole_response{failure=2}',
	'after restart: known peer offline');

# persist-1: RegisterPeer and RegisterPk as a client does, then online

{
	my $b = udp('127.0.0.8');
	$b->send_msg(register_peer => { id => 'db-persist-1' });
	$b->recv_msg();

	is(reg_pk($b, 'db-persist-1', 'uuid-persist-1', $PK1), 0,
		'after restart: re-registered');
	is(punch('db-persist-1', $b), 'punch_hole',
		'after restart: re-registered peer online');
}

# persist-2: memory was empty, RegisterPeer asks for the key until a
# RegisterPk was made

{
	my $b = udp('127.0.0.9');

	is(register_peer($b, 'db-persist-2'),
		'register_peer_response{request_pk=1}',
		'after restart: RegisterPeer asks for the key');
	is(register_peer($b, 'db-persist-2'),
		'register_peer_response{request_pk=1}',
		'after restart: RegisterPeer again asks for the key');
	is(reg_pk($b, 'db-persist-2', 'uuid-persist-2', $PK2), 0,
		'after restart: RegisterPk OK');
	is(register_peer($b, 'db-persist-2'), 'register_peer_response{}',
		'after restart: RegisterPeer after RegisterPk: no key asked');
	is(punch('db-persist-2', $b), 'punch_hole',
		'after restart: peer online');
}

is(join(' ', map { row($DB, $_)->{guid} } sort keys %before),
	join(' ', map { $before{$_} } sort keys %before),
	'after restart: guids kept');
is(sql($DB, "select count(*) from peer where id like 'db-persist-%'"), 2,
	'after restart: no new rows');

###############################################################################

# An existing rustdesk-server database, made before nginx starts

my $OLD = "$d/old/db_v2.sqlite3";
my $G1 = '00112233445566778899aabbccddeeff';
my $G2 = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';

$t->stop();

mkdir "$d/old";
sql($OLD, $REF_SCHEMA . <<"EOF");
insert into peer (guid, id, uuid, pk, created_at, user, status, note, info)
values (x'$G1', 'old-peer-1', x'${\ hex_of('old-uuid-1')}',
    x'${\ hex_of($PK1)}', '2023-04-05 06:07:08', x'0102', 1, 'kept',
    '{"ip":"127.0.0.5"}');
insert into peer (guid, id, uuid, pk, info)
values (x'$G2', 'old-peer-2', x'${\ hex_of('old-uuid-2')}',
    x'${\ hex_of($PK2)}', '{"ip": "::ffff:127.0.0.5"}');
EOF

is(sql($OLD, 'select count(*) from peer'), 2, 'existing database: made');

start('keys', "rustdesk_database $OLD;");
wait_workers();

is(sql($OLD, 'pragma journal_mode'), 'wal', 'existing database: in WAL mode');

is(punch('old-peer-1'), 'punch_hole_response{failure=2}',
	'existing database: PunchHoleRequest, peer offline');
is(punch('old-peer-2'), 'punch_hole_response{failure=2}',
	'existing database: PunchHoleRequest, peer with v4-mapped IP offline');
is(punch('db-never-seen'), 'punch_hole_response{}',
	'existing database: PunchHoleRequest, unknown id: ID_NOT_EXIST');
is(punch('db-persist-1'), 'punch_hole_response{}',
	'existing database: other database\'s peer unknown: ID_NOT_EXIST');

# old-peer-1 is in memory (the PunchHoleRequest loaded it); old-peer-2 is
# loaded by RegisterPk

for my $p ([ 'old-peer-1', 'old-uuid-1', $PK1, '127.0.0.6', $G1 ],
	[ 'old-peer-2', 'old-uuid-2', $PK2, '127.0.0.7', $G2 ])
{
	my ($id, $uuid, $pk, $ip, $g) = @$p;
	my $other_pk = $pk eq $PK1 ? $PK2 : $PK1;

	is(reg_pk(udp('127.0.0.5'), $id, 'other-uuid', $pk), 2,
		"$id: other uuid: UUID_MISMATCH");
	is(reg_pk(udp($ip), $id, $uuid, $other_pk), 2,
		"$id: same uuid, other pk and IP: UUID_MISMATCH");
	is(reg_pk(udp($ip), $id, $uuid, $pk), 0,
		"$id: same uuid and pk from another IP: OK");

	my $r = row($OLD, $id);
	is(lc($r->{guid}) . ' ' . $r->{info}, "$g {\"ip\":\"$ip\"}",
		"$id: IP updated in info, guid kept");
	is(show_row($r), "id=$id uuid=" . hex_of($uuid) . ' pk=' . hex_of($pk)
		. " info={\"ip\":\"$ip\"} "
		. ($id eq 'old-peer-1' ? 'user=0102 status=1 note=kept'
			: 'user=NULL status=NULL note=NULL'),
		"$id: uuid, pk and other columns kept");
}

is(sql($OLD, "select created_at from peer where id = 'old-peer-1'"),
	'2023-04-05 06:07:08', 'existing database: created_at kept');
is(sql($OLD, 'select count(*) from peer'), 2, 'existing database: no new row');

is(reg_pk(udp('127.0.0.1'), 'db-new-in-old', 'uuid-new', $PK1), 0,
	'existing database: new peer OK');
is(sql($OLD, "select count(*) from peer where id = 'db-new-in-old'"), 1,
	'existing database: new peer row');
is(sql($DB, "select count(*) from peer where id = 'db-new-in-old'"), 0,
	'existing database: default database not written');

###############################################################################

# rustdesk_database off: no file, registration works

start('keys-off', 'rustdesk_database off;');

$key = $t->read_file('keys-off/id_ed25519.pub');

{
	my $s = udp('127.0.0.10');

	is(reg_pk($s, 'db-off-01', 'uuid-off-01', $PK1), 0, 'off: RegisterPk OK');
	is(register_peer($s, 'db-off-01'), 'register_peer_response{}',
		'off: peer known');
	is(reg_pk($s, 'db-off-01', 'uuid-off-01', $PK2), 0, 'off: new pk OK');
	is(punch('old-peer-1'), 'punch_hole_response{}',
		'off: no database read');
	is(join(' ', map { s{.*/}{}r } glob("$d/keys-off/*")),
		'id_ed25519 id_ed25519.pub', 'off: no database file');
}

###############################################################################

# A broken database file: nginx -t and the start fail, the file stays

{
	my $random = join('', map { chr(int(rand(256))) } 1 .. 4096);
	my $text = "# not a database\n" . join('', map { "line $_\n" } 1 .. 50);

	for my $b ([ 'broken-random.db', $random ], [ 'broken-text.db', $text ]) {
		my ($name, $content) = @$b;
		my $file = "$d/$name";

		$t->write_file($name, $content);
		$t->write_file_expand('broken.conf', broken_conf($file));

		my ($rc, $out) = $t->test_config('broken.conf');

		like("exit code $rc\n$out",
			qr/^exit\ code\ [1-9].*\[emerg\].*
				database\ "\Q$file\E"\ is\ not\ usable/sx,
			"$name: nginx -t fails with [emerg] not usable");

		unlink "$d/broken-start.log";
		my $started = start_broken() == 0;

		if ($started) {
			# a master that should not be there
			$t->wait_for_file("$d/broken.pid", 3);
			my $pid = $t->read_file('broken.pid');
			chomp $pid;
			kill 'QUIT', $pid if $pid;
			wait_until(sub { !kill 0, $pid }, 5) if $pid;
		}

		like(($started ? 'started' : 'not started') . "\n"
			. $t->read_file('broken-start.log')
			. $t->read_file('broken-start.out'),
			qr/^not\ started.*\[emerg\].*
				database\ "\Q$file\E"\ is\ not\ usable/sx,
			"$name: start fails with [emerg] not usable");

		ok($t->read_file($name) eq $content, "$name: file left as it was");
	}
}

###############################################################################

# A database file the workers cannot write (read-only when they open
# it): SERVER_ERROR, no crash; its mode restored and reloaded: OK

$t->stop();
chmod 0444, $DB;

start('keys', '');

{
	my @pids = $t->worker_pids();

	is(reg_pk(udp('127.0.0.43'), 'db-ro-01', 'uuid-ro-01', $PK1), 7,
		'read-only: SERVER_ERROR');
	like(join("\n", grep { /db-ro-01/ && /database/i }
		$t->read_file('error.log') =~ /^.*\[error\].*$/mg),
		qr/\[error\]/, 'read-only: write error logged at [error]');
	is(join(' ', $t->worker_pids()), join(' ', @pids), 'read-only: no crash');

	chmod 0644, grep { -e } map { "$DB$_" } '', '-wal', '-shm';
	$t->reload();

	is(reg_pk(udp('127.0.0.44'), 'db-ro-02', 'uuid-ro-02', $PK1), 0,
		'mode restored: OK');
	is(sql($DB, "select id from peer where id like 'db-ro-%'"), 'db-ro-02',
		'mode restored: row written');
}

# RegisterPk datagrams from one socket in a burst (each waits for its
# write): every one answered and written, no crash

{
	my @pids = $t->worker_pids();
	my $s = udp('127.0.0.45');
	my @got;

	$s->send_msg(register_pk => { id => "db-burst-$_", uuid => "uuid-burst-$_",
		pk => $PK1 }) for 1 .. 3;

	while (@got < 3) {
		my ($type, $m) = $s->recv_msg(3);
		push @got, defined $type ? msg_text($type, $m) : 'timeout';
		last unless defined $type;
	}

	is(join(' ', @got), join(' ', ('register_pk_response{}') x 3),
		'burst from one socket: all answered OK');
	is(wait_value(sub { sql($DB, "select count(*) from peer "
		. "where id like 'db-burst-%'") }, 3), 3,
		'burst from one socket: all rows written');
	is(join(' ', $t->worker_pids()), join(' ', @pids),
		'burst from one socket: no crash');
}

###############################################################################

# (Re)starts nginx with a key dir and a database directive.

sub start {
	my ($keys, $db) = @_;
	$t->restart(stream_conf([ "rustdesk_key_dir %%TESTDIR%%/$keys;", $db ],
		srv_rendezvous(1)));
}

# Both workers up, and so past opening the database (in init_process,
# before their first event): each has handled a datagram.

sub wait_workers {
	my $end = time() + 10;
	my %seen;

	while (time() < $end && keys %seen < 2) {
		my $s = udp('127.0.0.3');
		$s->send_msg(register_peer => { id => 'db-wait' });
		my @r = $s->recv_msg(1);
		$seen{$t->worker_of($s)}++ if @r;
		delete $seen{0};
	}
}

# nginx started with broken.conf, what it says kept in broken-start.out:
# its exit code.

sub start_broken {
	my $pid = fork() // die "fork: $!\n";

	if ($pid == 0) {
		open STDOUT, '>', "$d/broken-start.out" or POSIX::_exit(127);
		open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
		exec($Test::Nginx::NGINX, '-p', "$d/", '-c', 'broken.conf', '-e',
			"$d/broken-start.log") or POSIX::_exit(127);
	}

	waitpid($pid, 0);
	return $? >> 8;
}

sub broken_conf {
	my ($file) = @_;

	return <<"EOF";

load_module %%STREAM%%;
load_module %%RENDEZVOUS%%;
load_module %%RELAY%%;

worker_processes 1;
pid %%TESTDIR%%/broken.pid;
error_log %%TESTDIR%%/broken-start.log info;
events { worker_connections 64; }

stream {
    rustdesk_key_dir %%TESTDIR%%/keys;
    rustdesk_database $file;

    server {
        listen 127.0.0.1:%%PORT_2%% reuseport;
        listen 127.0.0.1:%%PORT_2%% udp reuseport;
        rustdesk_rendezvous;
    }
}

EOF
}

# A sqlite3 CLI holding the database's write lock until unlock_db().

sub lock_db {
	my ($file) = @_;
	my $uid = (stat $file)[4];
	(my $flag = $file) =~ s{[^/]*$}{db-test-locked};

	unlink $flag;

	my $pid = open(my $fh, '|-') // die "fork: $!\n";

	if ($pid == 0) {
		become($uid);
		exec('sqlite3', '-batch', $file) or POSIX::_exit(127);
	}

	$fh->autoflush(1);
	print $fh "begin immediate;\n.shell echo locked > $flag\n";

	wait_until(sub { -s $flag }, 5);

	return $fh;
}

sub unlock_db {
	my ($fh) = @_;
	print $fh "rollback;\n.quit\n";
	close $fh;
	unlink glob("$d/*/db-test-locked");
}

# The kinds and names of the statements of ".schema".

sub statements {
	my ($schema) = @_;
	my @s;

	for my $st (split /;\s*/, $schema) {
		next unless $st =~ /\S/;
		push @s, $st =~ /^\s*create\s+(unique\s+)?(table|index)\s+
			(?:if\s+not\s+exists\s+)?["`\[]?(\w+)/xi
			? lc(($1 ? 'unique ' : '') . "$2 $3") : "other: $st";
	}

	return sort @s;
}

# The schema of table peer as SQLite understands it: columns (type, not
# null, default, primary key), indexes (unique, origin, columns) and
# WITHOUT ROWID.

sub describe {
	my ($file) = @_;
	my @d;

	push @d, 'columns: ' . sql($file, 'select name, lower(type), "notnull", '
		. "lower(coalesce(dflt_value, '-')), pk "
		. "from pragma_table_xinfo('peer') order by cid");
	push @d, 'indexes: ' . sql($file, 'select name, "unique", origin, partial '
		. "from pragma_index_list('peer') order by name");

	for my $ix (split /\n/, sql($file, "select name from "
		. "pragma_index_list('peer') order by name"))
	{
		push @d, "$ix: " . sql($file, "select seqno, coalesce(name, '-'), "
			. "\"desc\", key from pragma_index_xinfo('$ix') order by seqno");
	}

	push @d, 'without rowid: ' . sql($file, 'select count(*) '
		. "from sqlite_master where name = 'peer' "
		. "and lower(sql) like '%without rowid%'");

	return join("\n", @d);
}

# A row of table peer by id: guid (hex) and the other columns.

sub row {
	my ($file, $id) = @_;

	my @f = split /\|/, sql($file, "select hex(guid), id, hex(uuid), hex(pk), "
		. "created_at, case when user is null then 'NULL' else hex(user) end, "
		. "coalesce(status, 'NULL'), coalesce(note, 'NULL'), info "
		. "from peer where id = '$id'"), -1;

	my %r;
	@r{qw/ guid id uuid pk created_at user status note info /} = @f;
	$r{guid} //= '';

	return \%r;
}

sub show_row {
	my ($r) = @_;
	return join(' ', map { "$_=" . ($r->{$_} // 'none') }
		qw/ id uuid pk info user status note /);
}

sub hex_of {
	return uc(unpack('H*', $_[0]));
}

sub udp {
	my ($src) = @_;
	return RustDesk::Client->udp(port(1), LocalAddr => $src);
}

# The result of a RegisterPk: a number, or what came instead.

sub reg_pk {
	my ($c, $id, $uuid, $pk) = @_;

	$c->send_msg(register_pk => { id => $id, uuid => $uuid, pk => $pk });

	my ($rt, $m) = $c->recv_msg(10);
	return 'timeout' unless defined $rt;
	return msg_text($rt, $m) unless $rt eq 'register_pk_response';
	return $m->{result} // 0;
}

sub register_peer {
	my ($c, $id) = @_;

	$c->send_msg(register_peer => { id => $id });

	my ($rt, $m) = $c->recv_msg();
	return defined $rt ? msg_text($rt, $m) : 'timeout';
}

# A PunchHoleRequest over TCP from A: what A got; with B's UDP socket
# given, what B got (the message type) if A got nothing.

sub punch {
	my ($id, $b) = @_;

	my $a = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	$a->send_msg(punch_hole_request => { id => $id, licence_key => $key,
		nat_type => 1, version => '1.3.0' });

	if ($b) {
		my ($type) = $b->recv_msg();
		$a->close();
		return $type // 'nothing';
	}

	my ($type, $m) = $a->recv_msg();
	$a->close();

	return defined $type ? msg_text($type, $m) : 'timeout';
}

###############################################################################
