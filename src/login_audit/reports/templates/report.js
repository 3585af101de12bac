(function(){
  var table=document.getElementById('accounts');
  var body=table.tBodies[0];
  var rows=Array.prototype.slice.call(body.rows);
  var text=document.getElementById('filter-text');
  var kind=document.getElementById('filter-kind');
  function apply(){
    var t=text.value.toLowerCase(), k=kind.value, shown=0;
    rows.forEach(function(r){
      var ok=(!k||r.dataset.kind===k)&&(!t||r.textContent.toLowerCase().indexOf(t)>=0);
      r.style.display=ok?'':'none'; if(ok){shown++;}
    });
    document.getElementById('shown').textContent=shown;
  }
  text.addEventListener('input',apply); kind.addEventListener('change',apply);
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
    th.addEventListener('click',function(){
      var asc=th.dataset.dir!=='asc'; th.dataset.dir=asc?'asc':'desc';
      var numeric=th.dataset.type==='num';
      rows.sort(function(a,b){
        var x=a.cells[i].dataset.v||a.cells[i].textContent;
        var y=b.cells[i].dataset.v||b.cells[i].textContent;
        if(numeric){x=parseFloat(x);y=parseFloat(y);x=isNaN(x)?1e9:x;y=isNaN(y)?1e9:y;}
        return (x<y?-1:x>y?1:0)*(asc?1:-1);
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
  apply();
  document.body.setAttribute('data-ready','1');
})();
