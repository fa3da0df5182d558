#!/usr/bin/perl
# Serves a PSGI file with Plack::Handler::FCGI on one socket, in this process (no
# FCGI::ProcManager, which Debian's libplack-perl does not pull in):
#   perl plack_fcgi.pl LISTEN APP.psgi     LISTEN: a Unix socket path or ":port"
use strict;
use warnings;
use Plack::Handler::FCGI;
use Plack::Util;

my ($listen, $psgi) = @ARGV;
die "usage: $0 LISTEN APP.psgi\n" unless defined $psgi;
my $app = Plack::Util::load_psgi($psgi);
print STDERR "plack_fcgi.pl: serving $psgi on $listen\n";
Plack::Handler::FCGI->new(listen => [$listen], manager => '')->run($app);
print STDERR "plack_fcgi.pl: done\n";
