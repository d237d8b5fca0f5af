"""The built-in metrics as single statements: the definitions of IR_ENGINE_SCHEMA.md, one per
metric, against which the pack's fused queries are checked (and timed, in the benchmarks)."""

from __future__ import annotations

POSTGRESQL = {
    "activeInstances": "SELECT count(*) AS count FROM instance WHERE ended = false",
    "activeLocations": (
        'SELECT count(DISTINCT "locationId") AS count FROM instance WHERE ended = false'
    ),
    "activeScenes": (
        'SELECT count(DISTINCT l."sceneId") AS count FROM instance AS i '
        'JOIN location AS l ON l.id = i."locationId" WHERE i.ended = false'
    ),
    "activeChannels": (
        'SELECT count(DISTINCT "channelId") AS count FROM instance WHERE ended = false'
    ),
    "instanceUsers": (
        'SELECT count(DISTINCT "userId") AS count FROM "instance-attendance" '
        'WHERE ended = false AND "isChannel" = false'
    ),
    "channelUsers": (
        'SELECT count(DISTINCT "userId") AS count FROM "instance-attendance" '
        'WHERE ended = false AND "isChannel" = true'
    ),
    "dailyUsers": (
        'SELECT count(DISTINCT "userId") AS count FROM "instance-attendance" '
        'WHERE "createdAt" > %(slot)s - interval \'24 hours\' AND "createdAt" <= %(slot)s'
    ),
    "dailyNewUsers": (
        'SELECT count(*) AS count FROM "user" '
        'WHERE "createdAt" > %(slot)s - interval \'24 hours\' AND "createdAt" <= %(slot)s'
    ),
    "chatMessages": (
        'SELECT count(*) AS count FROM message WHERE "isNotification" = false '
        'AND "createdAt" > %(slot)s - %(interval)s AND "createdAt" <= %(slot)s'
    ),
    "weeklyUsers": (
        'SELECT count(DISTINCT "userId") AS count FROM "instance-attendance" '
        'WHERE "createdAt" > %(slot)s - interval \'7 days\' AND "createdAt" <= %(slot)s'
    ),
    "monthlyUsers": (
        'SELECT count(DISTINCT "userId") AS count FROM "instance-attendance" '
        'WHERE "createdAt" > %(slot)s - interval \'30 days\' AND "createdAt" <= %(slot)s'
    ),
}

MYSQL = {
    "activeInstances": "SELECT COUNT(*) AS `count` FROM `instance` WHERE `ended` = 0",
    "activeLocations": (
        "SELECT COUNT(DISTINCT `locationId`) AS `count` FROM `instance` WHERE `ended` = 0"
    ),
    "activeScenes": (
        "SELECT COUNT(DISTINCT l.`sceneId`) AS `count` FROM `instance` AS i "
        "JOIN `location` AS l ON l.`id` = i.`locationId` WHERE i.`ended` = 0"
    ),
    "activeChannels": (
        "SELECT COUNT(DISTINCT `channelId`) AS `count` FROM `instance` WHERE `ended` = 0"
    ),
    "instanceUsers": (
        "SELECT COUNT(DISTINCT `userId`) AS `count` FROM `instance-attendance` "
        "WHERE `ended` = 0 AND `isChannel` = 0"
    ),
    "channelUsers": (
        "SELECT COUNT(DISTINCT `userId`) AS `count` FROM `instance-attendance` "
        "WHERE `ended` = 0 AND `isChannel` = 1"
    ),
    "dailyUsers": (
        "SELECT COUNT(DISTINCT `userId`) AS `count` FROM `instance-attendance` "
        "WHERE `createdAt` > %(slot)s - INTERVAL 24 HOUR AND `createdAt` <= %(slot)s"
    ),
    "dailyNewUsers": (
        "SELECT COUNT(*) AS `count` FROM `user` "
        "WHERE `createdAt` > %(slot)s - INTERVAL 24 HOUR AND `createdAt` <= %(slot)s"
    ),
    "chatMessages": (
        "SELECT COUNT(*) AS `count` FROM `message` WHERE `isNotification` = 0 "
        "AND `createdAt` > %(slot)s - INTERVAL %(interval_seconds)s SECOND "
        "AND `createdAt` <= %(slot)s"
    ),
    "weeklyUsers": (
        "SELECT COUNT(DISTINCT `userId`) AS `count` FROM `instance-attendance` "
        "WHERE `createdAt` > %(slot)s - INTERVAL 7 DAY AND `createdAt` <= %(slot)s"
    ),
    "monthlyUsers": (
        "SELECT COUNT(DISTINCT `userId`) AS `count` FROM `instance-attendance` "
        "WHERE `createdAt` > %(slot)s - INTERVAL 30 DAY AND `createdAt` <= %(slot)s"
    ),
}
