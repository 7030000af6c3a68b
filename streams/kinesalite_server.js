// Runs kinesalite (a Kinesis API emulator) bound to one host, which its own CLI cannot do:
// `kinesalite` listens on every interface, `listen(port, host)` of its Node API on the given one.
// Usage: node kinesalite_server.js <kinesalite module dir> <host> <port> [<LevelDB folder>]
'use strict'
var args = process.argv.slice(2)
var options = {createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100}
if (args[3]) options.path = args[3]
var server = require(args[0])(options)
server.listen(Number(args[2]), args[1], function () {
  var address = server.address()
  console.log('kinesalite listening at http://%s:%s%s', address.address, address.port,
    options.path ? ' (LevelDB in ' + options.path + ')' : ' (in memory)')
})
function stop() { server.close(function () { process.exit(0) }) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
