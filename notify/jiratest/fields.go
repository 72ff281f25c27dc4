package jiratest

// fieldList is the answer to GET /rest/api/2/field.
const fieldList = `[
 {"id":"summary","name":"Summary","custom":false,"orderable":true,"navigable":true,"searchable":true,"clauseNames":["summary"],"schema":{"type":"string","system":"summary"}},
 {"id":"labels","name":"Labels","custom":false,"schema":{"type":"array","items":"string","system":"labels"}},
 {"id":"priority","name":"Priority","custom":false,"schema":{"type":"priority","system":"priority"}},
 {"id":"customfield_10010","name":"Datacenter","custom":true,"clauseNames":["cf[10010]","Datacenter"],"schema":{"type":"option","custom":"com.atlassian.jira.plugin.system.customfieldtypes:select","customId":10010}},
 {"id":"customfield_10011","name":"Deployer Host","custom":true,"schema":{"type":"string","custom":"com.atlassian.jira.plugin.system.customfieldtypes:textfield","customId":10011}},
 {"id":"customfield_10012","name":"Affected Repos","custom":true,"schema":{"type":"array","items":"string","custom":"com.atlassian.jira.plugin.system.customfieldtypes:labels","customId":10012}},
 {"id":"customfield_10013","name":"Impact Score","custom":true,"schema":{"type":"number","custom":"com.atlassian.jira.plugin.system.customfieldtypes:float","customId":10013}},
 {"id":"customfield_10014","name":"Change","custom":true,"schema":{"type":"string","custom":"com.atlassian.jira.plugin.system.customfieldtypes:textfield","customId":10014}},
 {"id":"customfield_10015","name":"Outcome","custom":true,"schema":{"type":"string","custom":"com.atlassian.jira.plugin.system.customfieldtypes:textfield","customId":10015}},
 {"id":"customfield_10020","name":"Team","custom":true,"schema":{"type":"string","customId":10020}},
 {"id":"customfield_10021","name":"Team","custom":true,"schema":{"type":"option","customId":10021}}
]`
