/*! ctm-pbx swap.js, see README */
(()=>{
if(window.CTM)return;
let W=window,D=document,H=D.documentElement,L=location,K='ctm_vid',me=D.currentScript||D.querySelector('script[src*="swap.js"]')||H,C=W.ctmConfig||{},
opt=k=>k in C?C[k]:me.getAttribute('data-ctm-'+k),
api=(opt('api')||new URL(me.src||'/',L).origin).replace(/\/+$/,''),
nc=![null,void 0,!1].includes(opt('cookieless')),af=+opt('antiflicker'),
NO='script,style,noscript,textarea,select,template,[data-ctm-noswap]',
IN=/^([ABIQSU]|ABBR|BDI|CITE|CODE|DATA|EM|FONT|KBD|LABEL|MARK|NOBR|S(MALL|PAN|TRONG|U[BP])|TIME)$/,
GAP=/^([().\-/\u2010-\u2015]|\s+(?!\s)){1,3}$/,seen={},store=()=>W[nc?'sessionStorage':'localStorage'],
keep=v=>{try{store()[v?'setItem':'removeItem'](K,v)}catch{}
nc||(D.cookie=K+'='+encodeURIComponent(v)+';path=/;SameSite=Lax;max-age='+(v?31536000:0))},
numbers=()=>({...map}),
forms=e=>{let t=e.replace(/\D/g,''),c=/^[17]/.test(t)?1:/^(2[07]|3[0-469]|4[013-9]|5[1-8]|6[0-6]|8[1246]|9[0-58])/.test(t)?2:3,n=t.slice(c);
return t[0]==1?[t,n]:[t,n,(t[0]==7?8:0)+n,t.slice(0,c)+0+n,'00'+t]},
apply=(s,e,o=0)=>s.split('').map((c,i)=>(i+=o)in e?e[i]:c).join(''),
R,sent,hits=0,ok=opt('consent')!='required',vid,idx,map={},src,hiding,mo,css,done,timer,due,every,started,ready=new Promise(r=>done=r),
find=s=>{let i,j,a,hit,to,o=0,p=s.split(/(\d+)/),at=p.map(x=>(o+=x.length)-x.length),out={},
glued=k=>k&&p[k+1]&&/^[./\-\u2010-\u2015]+$/.test(p[k]);
for(i=1;i<p.length;i+=2){for(a='',hit=0,j=glued(i-1)?1/0:i;j<p.length&&a.length<18;j+=2){
if(j>i&&!GAP.test(p[j-1]))break;
a+=p[j];if((to=idx?idx[a]:a.length>6&&' ')&&!glued(j+1))hit=[j,to,a.length]}
if(hit){[j,to,a]=hit;hits++;for(o=0;i<=j;i+=2)for(let c=0;c<p[i].length;)out[at[i]+c++]=++o<a?to[o-1]||'':to.slice(o-1);i=j}}
return out},
scan=root=>{let nodes=[],s='',h,x,
flush=()=>{if(R.test(s)){let o=0,e=find(s);for(let n of nodes){let d=n.data,t=apply(d,e,o);o+=d.length;
t!=d&&(idx?n.data=t:n.parentNode.setAttribute('data-ctm-h',''))}}nodes=[];s=''};
if(idx)for(let a of root.querySelectorAll('a[href^="tel:"i]'))if(a.tagName=='A'&&!a.closest(NO)&&(h=a.getAttribute('href'))!=(x=apply(h,find(h))))a.setAttribute('href',x);
if(R.test(root.textContent))(function walk(el){for(let n=el.firstChild,t;n;n=n.nextSibling)
if((t=n.nodeType)==3)nodes.push(n),s+=n.data;else if(t==1)if(IN.test(n.tagName))n.matches(NO)?flush():walk(n);else{flush();if(R.test(n.textContent)&&!n.matches(NO))walk(n),flush()}})(root);
flush()},
pass=roots=>{let c=hits,m=idx?99:7;for(let k in idx)m=Math.min(m,k.length);R=RegExp('\\d(\\W*\\d){'+--m+'}');
(roots||[H]).map(scan);c=hits-c;mo&&mo.takeRecords();
if(idx&&(c||!roots))D.dispatchEvent(new CustomEvent('ctm:swapped',{detail:{source:src,numbers:numbers(),count:c}}));return c},
watch=()=>{mo||(mo=new MutationObserver(recs=>{if(!idx&&!hiding)return;let set=new Set;
for(let r of recs)for(let n of r.type=='childList'?r.addedNodes:[r.target]){
if(n.nodeType!=1)n=n.parentNode;while(n&&n!=H&&IN.test(n.tagName))n=n.parentNode;
if(n&&n.isConnected&&!n.closest(NO))set.add(n)}
let roots=[...set].filter(r=>{while(r=r.parentNode)if(set.has(r))return;return 1});
if(roots[0])pass(roots)})).observe(H,{childList:!0,subtree:!0,characterData:!0,attributeFilter:['href']})},
reveal=()=>{if(hiding){hiding=0;css.remove();for(let e of D.querySelectorAll('[data-ctm-h]'))e.removeAttribute('data-ctm-h')}},
call=async path=>{let body={visitor_id:load(),...path=='visit'&&{landing_url:L.href,referrer:D.referrer,page:L.pathname,time_zone:Intl.DateTimeFormat().resolvedOptions().timeZone,language:navigator.language,ga_client_id:ck(/(^|; )_ga=\w+\.\d+\.(\d+\.\d+)/),ga_session_id:ck(/(^|; )_ga_\w+=GS\d\.\d\.s?(\d+)/)}};
try{let r=await fetch(api+'/api/'+path,{method:'POST',body:JSON.stringify(body)}),j=await r.json();
if(!r.ok||!j.numbers)throw 0;got(j)}
catch{if(path=='renew'&&ok)return call('visit');reveal();done(null);if(idx)schedule()}},
ck=r=>(D.cookie.match(r)||0)[2],
bye=()=>{idx&&ok&&vid&&!sent&&(sent=navigator.sendBeacon(api+'/api/close',JSON.stringify({visitor_id:vid})))},
load=()=>{try{vid=vid||store().getItem(K)}catch{}
let m=!vid&&!nc&&ck(/(^|; )ctm_vid=([^;]+)/);return vid=m?decodeURIComponent(m):vid||null},
got=j=>{if(!ok)return;sent=0;src=j.source||null;map={};idx={};
for(let t in j.numbers){let v=j.numbers[t],to=(v||0).number||v;if(typeof to=='string')map[t]=to}
for(let t in map){let to=map[t],s=seen[t]=seen[t]||[t],f=forms(to);if(!s.includes(to))s.push(to);
for(let x of s)if(!Object.values(map).includes(x))forms(x).forEach((y,i)=>idx[y]=x!=t&&idx[y]||f[i]||f[0])}
watch();pass();reveal();if(vid=j.visitor_id||vid)keep(vid);
done(numbers());every=Math.max(+j.renew_every_s||60,.25)*1e3;schedule()},
schedule=()=>{clearTimeout(timer);if(due=ok&&Date.now()+every)timer=setTimeout(tick,every)},
tick=()=>{if(D.visibilityState!='hidden'&&due)due=0,call('renew')},
start=()=>{if(!started)started=1,watch(),call('visit')};
D.addEventListener('visibilitychange',()=>D.visibilityState=='hidden'?bye():(sent||Date.now()>=due)&&tick());W.addEventListener('pagehide',bye);
W.CTM={ready,numbers,rescan:()=>idx?pass():0,consent(yes){if(ok=yes)return start();started=due=vid=0;clearTimeout(timer);keep('')}};
if(ok&&af){hiding=1;(D.head||H).append(css=D.createElement('style'));css.textContent='[data-ctm-h]{visibility:hidden!important}';
watch();pass();setTimeout(reveal,af)}
if(ok)start()})();
